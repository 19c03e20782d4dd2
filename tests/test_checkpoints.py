"""Checkpoints cannot be silently corrupt: checksums over every tensor, the previous checkpoint kept, and every
malformed manifest a CheckpointError that says what to do."""
from __future__ import annotations

import json

import pytest
import torch

from flowlib.training import checkpoints
from flowlib.training.checkpoints import CheckpointError


def _release(tmp_path, config=None):
    path = tmp_path / "m.pt"
    checkpoints.save(path, {"config": config or {"a": 1}, "model": {"w": torch.arange(4000.0)}})
    manifest = tmp_path / "manifest.json"
    checkpoints.write_manifest_entry("m", {"file": "m.pt", "sha256": checkpoints.sha256(path), "config": {"a": 1},
                                           "command": "python -m flowlib.training m"}, manifest)
    return path, manifest


def test_every_tensor_is_checksummed_and_a_flipped_byte_is_caught(tmp_path):
    path = tmp_path / "c.pt"
    w = torch.arange(4000.0)
    checkpoints.save(path, {"model": {"w": w}, "step": 3})
    assert checkpoints.load(path)["checksum"] == checkpoints.payload_checksum({"model": {"w": w}, "step": 3})
    raw = bytearray(path.read_bytes())
    at = raw.find(w.numpy().tobytes()[:64])
    raw[at + 100] ^= 0x01  # one bit of one float
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["step"] == 3  # torch itself loads it without a word
    with pytest.raises(CheckpointError, match=r"c.pt is corrupt.*Delete .*c.pt and start again"):
        checkpoints.load(path)


def test_the_checksum_covers_values_dtypes_and_shapes():
    base = {"model": {"w": torch.zeros(2, 3)}, "step": 1}
    same = checkpoints.payload_checksum(base)
    for changed in ({"model": {"w": torch.zeros(3, 2)}, "step": 1}, {"model": {"w": torch.zeros(2, 3).double()},
                    "step": 1}, {"model": {"w": torch.zeros(2, 3)}, "step": 2}, {"model": {"v": torch.zeros(2, 3)},
                                                                                 "step": 1}):
        assert checkpoints.payload_checksum(changed) != same
    assert checkpoints.payload_checksum({"step": 1, "model": {"w": torch.zeros(2, 3)}}) == same  # key order


def test_a_payload_without_its_checksum_is_refused(tmp_path):
    torch.save({"format": checkpoints.FORMAT, "model": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="no checksum"):
        checkpoints.load(tmp_path / "x.pt")


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoints.save(path, {"step": 1}, keep_previous=True)

    def broken_load(p, map_location="cpu"):
        raise CheckpointError("verification failed")

    monkeypatch.setattr(checkpoints, "load", broken_load)
    with pytest.raises(CheckpointError):
        checkpoints.save(path, {"step": 2}, keep_previous=True)
    monkeypatch.undo()
    assert checkpoints.load(path)["step"] == 1 and not (tmp_path / "previous.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "the unverified temporary file was left behind"


@pytest.mark.parametrize("text, expected", [
    ('{"m": {"file": "m.pt", "sh', "not valid JSON.*truncated.*git checkout"),
    ('[1, 2]', "must map checkpoint names to entries"),
    ('{"m": "m.pt"}', "must map checkpoint names to entries"),
], ids=["truncated", "a-list", "entry-not-an-object"])
def test_a_malformed_manifest_is_a_checkpoint_error(tmp_path, text, expected):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError, match=expected):
        checkpoints.load_pretrained("m", tmp_path / "manifest.json")


@pytest.mark.parametrize("key", ["sha256", "file", "command", "config"])
def test_a_manifest_entry_missing_a_key_is_a_checkpoint_error(tmp_path, key):
    path, manifest = _release(tmp_path)
    data = json.loads(manifest.read_text())
    del data["m"][key]
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"lacks \\['{key}'\\].*git checkout"):
        checkpoints.load_pretrained("m", manifest)


def test_the_manifest_configuration_is_compared_with_the_files(tmp_path):
    path, manifest = _release(tmp_path, config={"a": 2})
    with pytest.raises(CheckpointError, match=r"configuration \{'a': 2\}.*describes \{'a': 1\}.*do not belong"):
        checkpoints.load_pretrained("m", manifest)


def test_the_shipped_checkpoint_of_the_first_format_still_loads_and_matches_its_manifest():
    payload, entry = checkpoints.load_pretrained("realnvp-fmnist")
    assert payload["legacy"] is True and payload["config"] == entry["config"]
