"""Atomic writes and the verified backup store (no TensorFlow needed)."""

import os

import numpy as np
import pytest

from tf_mmcl.training import files


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(str(target), {"epoch": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(str(target)) as tmp:
            assert tmp.endswith("metrics.json") and ".tmp-" in tmp and os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, "w") as f:
                f.write('{"epo')  # half written
            raise RuntimeError("killed")
    assert files.read_json(str(target)) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
    (tmp_path / ".tmp-123-model.keras").write_bytes(b"PK\x03")
    (tmp_path / "model.keras").write_bytes(b"keep")
    assert files.remove_leftovers(str(tmp_path)) == [".tmp-123-model.keras"]
    assert os.listdir(tmp_path) == ["model.keras"]


def test_a_corrupt_json_file_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"seed": 0, "epo')
    with pytest.raises(files.CorruptFileError, match=f"The run config {path} is corrupt or incomplete"):
        files.read_json(str(path), "run config")


def test_backup_store_keeps_two_and_skips_corrupt_ones_by_name(tmp_path):
    store = files.BackupStore(str(tmp_path / "backup"))
    for epoch in (1, 2, 3):
        store.save(epoch, {"w": np.full(3, epoch, np.float32)}, {"history": {"loss": [1.0] * epoch}})
    assert store.epochs() == [3, 2]  # the oldest is deleted once the newest is complete
    state, arrays = store.latest()
    assert state["epoch"] == 3 and arrays["w"].tolist() == [3, 3, 3]
    # A state file cut short: named, and the previous backup is used.
    (tmp_path / "backup" / "epoch_000003.json").write_text('{"epoch": 3, "sha')
    with pytest.warns(UserWarning, match=r"backup state file .*epoch_000003.json is corrupt or incomplete"):
        state, arrays = store.latest()
    assert state["epoch"] == 2 and arrays["w"].tolist() == [2, 2, 2]
    # Arrays that do not match their state's checksum: named as well.
    npz = tmp_path / "backup" / "epoch_000002.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.warns(UserWarning, match=r"epoch_000002.npz is corrupt or incomplete"):
        assert store.latest() is None
    # A backup for another config is skipped with the reason.
    store.save(4, {"w": np.zeros(1)}, {"config_fingerprint": "other"})
    with pytest.warns(UserWarning, match="written for another config"):
        store.latest(lambda s: "it was written for another config." if s.get("config_fingerprint") != "x" else None)
    store.clear()
    assert not (tmp_path / "backup").exists()
