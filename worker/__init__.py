"""Queue contract, Redis transport, sampling service, model registry and hot reload.

What a bot needs imports no torch: the protocol, the transports and the client.
The sampling service loads torch only when it loads models.
"""

from worker.client import QueueUnavailable, RequestTimedOut, WorkerBusy, WorkerClient
from worker.embedded import embedded_worker
from worker.protocol import (
    LABELS,
    PROTOCOL_VERSION,
    ErrorCode,
    GenerateRequest,
    GenerateResult,
    Origin,
    ProtocolError,
    decode_request,
    decode_result,
)
from worker.redis_transport import RedisStreamsTransport
from worker.registry import DEFAULT_VERSION, ModelRegistry, RegistryError, registry_from_settings
from worker.settings import WorkerSettings
from worker.transport import DeadLetter, Delivery, InProcessTransport, Transport

__all__ = [
    "DEFAULT_VERSION",
    "LABELS",
    "PROTOCOL_VERSION",
    "DeadLetter",
    "Delivery",
    "ErrorCode",
    "GenerateRequest",
    "GenerateResult",
    "InProcessTransport",
    "ModelRegistry",
    "Origin",
    "ProtocolError",
    "QueueUnavailable",
    "RedisStreamsTransport",
    "RegistryError",
    "RequestTimedOut",
    "Transport",
    "WorkerBusy",
    "WorkerClient",
    "WorkerSettings",
    "decode_request",
    "decode_result",
    "embedded_worker",
    "registry_from_settings",
]
