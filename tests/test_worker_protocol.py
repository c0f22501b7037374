"""The queue contract and the model registry: plain data and files, no queue, no torch."""

import json
import subprocess
import sys

import pytest

from worker import (
    PROTOCOL_VERSION,
    ErrorCode,
    GenerateRequest,
    GenerateResult,
    ModelRegistry,
    ProtocolError,
    RegistryError,
    decode_request,
    decode_result,
)
from worker.protocol import salvage_request_fields


def test_request_and_result_round_trip_through_json():
    request = GenerateRequest(label="negative", seed=7, count=3, size=96, reply_to="bot-1")
    assert decode_request(request.to_json()) == request
    result = GenerateResult(request_id=request.request_id, images=[b"\x89PNG\r\n", b"\x00\xff"])
    decoded = decode_result(result.to_json())
    assert decoded.images == [b"\x89PNG\r\n", b"\x00\xff"] and decoded.ok
    failure = GenerateResult.failure("r1", ErrorCode.SAMPLING_FAILED, "boom")
    assert not decode_result(failure.to_json()).ok


def test_unknown_protocol_version_is_rejected_by_name():
    document = json.loads(GenerateRequest(label="positive", seed=1, reply_to="b").to_json())
    document["v"] = PROTOCOL_VERSION + 1
    with pytest.raises(ProtocolError, match=f"version {PROTOCOL_VERSION + 1}"):
        decode_request(json.dumps(document))


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"v": 1, "label": "sad", "seed": 1, "reply_to": "b"}', "label"),
        ('{"v": 1, "label": "positive", "seed": -1, "reply_to": "b"}', "seed"),
        ('{"v": 1, "label": "positive", "seed": 1, "reply_to": "b", "count": 999}', "count"),
        ('{"v": 1, "label": "positive", "seed": 1}', "reply_to"),
    ],
)
def test_malformed_requests_say_what_is_wrong(raw, complaint):
    with pytest.raises(ProtocolError, match=complaint):
        decode_request(raw)


def test_salvage_finds_who_to_tell_in_a_broken_request():
    raw = '{"v": 9, "request_id": "abc", "reply_to": "bot-2"}'
    assert salvage_request_fields(raw) == ("abc", "bot-2")
    assert salvage_request_fields("garbage") == (None, None)


def test_importing_the_worker_package_does_not_import_torch():
    code = "import sys, worker, worker.client, worker.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_publish_activate_and_fall_back_to_shipped_models(tmp_path):
    shipped = tmp_path / "models"
    shipped.mkdir()
    (shipped / "positive.pt").write_bytes(b"shipped")
    registry = ModelRegistry(tmp_path / "registry", shipped)
    assert registry.active_version() == "default"
    assert registry.checkpoint_path("positive") == shipped / "positive.pt"

    checkpoint = tmp_path / "new.pt"
    checkpoint.write_bytes(b"new weights")
    registry.publish("v1", {"positive": checkpoint}, meta={"fid": 12.5})
    assert registry.active_version() == "default"  # published is not live yet
    registry.activate("v1")
    assert registry.active_version() == "v1"
    assert registry.checkpoint_path("positive").read_bytes() == b"new weights"
    assert registry.meta("v1")["fid"] == 12.5
    assert registry.versions() == ["v1"]
    assert not list((tmp_path / "registry").glob("*.partial"))


def test_registry_refuses_bad_versions_and_missing_checkpoints(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    checkpoint = tmp_path / "c.pt"
    checkpoint.write_bytes(b"x")
    registry.publish("v1", {"positive": checkpoint})
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish("v1", {"positive": checkpoint})
    with pytest.raises(RegistryError, match="no version"):
        registry.activate("v9")
    with pytest.raises(RegistryError, match="not a version name"):
        registry.checkpoint_path("positive", "../etc")
    with pytest.raises(RegistryError, match="no negative checkpoint"):
        registry.checkpoint_path("negative", "v1")
    with pytest.raises(RegistryError, match="no default models folder"):
        registry.checkpoint_path("positive", "default")
