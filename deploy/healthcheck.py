"""Liveness of a `moodmoji worker`: its heartbeat in Redis is there and fresh.

The worker writes `<prefix>:heartbeat:<worker_id>` every `MOODMOJI_WORKER_HEARTBEAT_S`
from its event loop, with a time-to-live of three beats. This probe finds this
machine's heartbeat (by `MOODMOJI_WORKER_ID` if set, else by host name, which is the
pod or container name) and exits

- 0 when it is younger than three beats, or when Redis cannot be reached: restarting the
  worker would not bring Redis back, and the worker waits out outages by itself;
- 1 when there is none or it is stale: a hung event loop or a worker that never started.

Used by the image's HEALTHCHECK, compose and the Kubernetes liveness probe. Readiness
is the metrics endpoint, which answers only once the models are loaded.
"""

import json
import socket
import sys
import time

import redis

from worker import WorkerSettings


def heartbeat_age(client: redis.Redis, settings: WorkerSettings, host: str) -> float | None:
    """Seconds since this worker's last heartbeat, or None if it has none."""
    prefix = f"{settings.queue_prefix}:heartbeat:"
    if settings.worker_id:
        keys = [prefix + settings.worker_id]
    else:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
    newest = None
    for value in client.mget(keys) if keys else []:
        if value is None:
            continue
        beat = json.loads(value)
        if settings.worker_id or beat.get("host") == host:
            newest = max(newest or 0.0, float(beat["at"]))
    return None if newest is None else max(0.0, time.time() - newest)


def main() -> int:
    settings = WorkerSettings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        age = heartbeat_age(client, settings, socket.gethostname())
    except (redis.ConnectionError, redis.TimeoutError) as error:
        print(f"redis unreachable ({error}); not the worker's fault")
        return 0
    finally:
        client.close()
    limit = settings.worker_heartbeat_s * 3
    if age is None or age > limit:
        print("no heartbeat" if age is None else f"heartbeat {age:.1f} s old (limit {limit:g} s)")
        return 1
    print(f"heartbeat {age:.1f} s old")
    return 0


if __name__ == "__main__":
    sys.exit(main())
