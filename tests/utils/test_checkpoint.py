"""Checkpoint IO: atomic writes, weights-only loading, fine-tuning summary, RNG round trip."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger
from torch import nn

from yolox.utils.checkpoint import (
    CheckpointWriteError,
    atomic_save,
    capture_rng_state,
    load_checkpoint_file,
    load_ckpt,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from yolox.utils.errors import UserError


class _Net(nn.Module):
    def __init__(self, classes: int, extra: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.cls = nn.Conv2d(8, classes, 1)
        if extra:
            self.attn = nn.Sequential(nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1))


def _log_lines() -> tuple[list[str], int]:
    lines: list[str] = []
    return lines, logger.add(lines.append, format="{message}", level="INFO")


def test_save_checkpoint_writes_latest_and_best(tmp_path: Path) -> None:
    state = {"model": _Net(3).state_dict(), "start_epoch": 4, "best_ap": 0.5}
    path = save_checkpoint(state, True, tmp_path / "run", "latest")
    assert path == tmp_path / "run" / "latest_ckpt.pth"
    for name in ("latest_ckpt.pth", "best_ckpt.pth"):
        loaded = torch.load(tmp_path / "run" / name, weights_only=True)
        assert loaded["start_epoch"] == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best_ckpt.pth", "latest_ckpt.pth"]


def test_a_failed_save_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "latest_ckpt.pth"
    atomic_save({"version": 1}, target)
    original = target.read_bytes()

    def broken_save(obj, stream) -> None:
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointWriteError, match="disk full .the previous file is kept"):
        atomic_save({"version": 2}, target)
    assert target.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["latest_ckpt.pth"]


def test_load_checkpoint_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint_file(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth"):
        load_checkpoint_file(garbage)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError, match="expected a dict"):
        load_checkpoint_file(tmp_path / "list.pth")


def test_load_ckpt_reports_new_skipped_and_unused_in_one_line() -> None:
    torch.manual_seed(0)
    source = _Net(80).state_dict()
    source["old_head.weight"] = torch.zeros(2)
    model = _Net(20, extra=True)
    lines, handler = _log_lines()
    try:
        load_ckpt(model, {"model": source, "start_epoch": 300})
    finally:
        logger.remove(handler)
    summary = [line for line in lines if line.startswith("checkpoint load: ")]
    assert len(summary) == 1
    line = summary[0]
    assert "loaded 2/8 tensors" in line
    assert "new 4: attn.0.* (2), attn.1.* (2)" in line
    assert "skipped for shape mismatch 2: cls.weight (80, 8, 1, 1)->(20, 8, 1, 1), cls.bias (80,)->(20,)" in line
    assert "unused from checkpoint 1: old_head.* (1)" in line
    assert torch.equal(model.stem.weight, source["stem.weight"])


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    atomic_save({"rng": capture_rng_state()}, tmp_path / "rng.pth")
    expected = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True)["rng"])
    again = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    assert expected[:3] == again[:3]
    assert torch.equal(expected[3], again[3])


def test_full_disk_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path: Path, small_tmpfs) -> None:
    with small_tmpfs(tmp_path / "disk", "size=256k") as disk:
        save_checkpoint({"model": {"w": torch.zeros(1000)}, "start_epoch": 1}, False, disk, "latest")
        with pytest.raises(CheckpointWriteError) as caught:
            save_checkpoint({"model": {"w": torch.zeros(200_000)}, "start_epoch": 2}, False, disk, "latest")
        message = str(caught.value)
        assert message.startswith(f"cannot write checkpoint {disk / 'latest_ckpt.pth'}: no space left on device")
        assert "previous file is kept" in message and "\n" not in message
        assert torch.load(disk / "latest_ckpt.pth", weights_only=True)["start_epoch"] == 1
        assert [p.name for p in disk.iterdir()] == ["latest_ckpt.pth"]


def test_read_only_folder_is_one_clear_error(tmp_path: Path, small_tmpfs) -> None:
    with small_tmpfs(tmp_path / "ro", "size=64k,ro") as folder:
        with pytest.raises(CheckpointWriteError, match=r"cannot write checkpoint .*ro.latest_ckpt.pth: the folder is "
                                                       r"on a read-only file system .nothing was written"):
            save_checkpoint({"start_epoch": 1}, False, folder, "latest")


def test_checkpoints_honour_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_save({"a": 1}, tmp_path / "shared.pth")
        os.umask(0o077)
        atomic_save({"a": 1}, tmp_path / "private.pth")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.pth").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.pth").stat().st_mode & 0o777 == 0o600


def test_stale_temporary_checkpoints_are_removed(tmp_path: Path) -> None:
    stale = [tmp_path / ".latest_ckpt.pth.k2j3h4.tmp", tmp_path / ".epoch_3_ckpt.pth.x9y8.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    kept = [tmp_path / "latest_ckpt.pth", tmp_path / ".notes.tmp", tmp_path / "train_log.txt"]
    for path in kept:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def test_loading_under_half_of_the_tensors_warns_about_the_model_size() -> None:
    small, large = _Net(3), nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 3, 1), nn.Conv2d(3, 3, 1))
    lines: list[str] = []
    handler = logger.add(lines.append, format="{level} {message}", level="WARNING")
    try:
        load_ckpt(_Net(3), {"model": small.state_dict()})
        assert lines == []
        source = {"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8), "1.bias": torch.zeros(3)}
        load_ckpt(large, {"model": source, "meta": {"depth": 0.33, "width": 0.25}})
    finally:
        logger.remove(handler)
    assert len(lines) == 1
    assert lines[0].startswith("WARNING only 1 of the model's 6 tensors were loaded from the checkpoint")
    assert "(2 of another shape, 3 absent)" in lines[0]
    assert "another model size (the checkpoint's meta says depth 0.33, width 0.25)" in lines[0]


def test_missing_best_checkpoint_lists_the_run_checkpoints(tmp_path: Path) -> None:
    from yolox.utils.checkpoint import default_checkpoint

    with pytest.raises(UserError, match=r"best_ckpt.pth does not exist and .* holds no checkpoint: train this exp"):
        default_checkpoint(tmp_path)
    for name in ("epoch_1_ckpt.pth", "last_epoch_ckpt.pth", "latest_ckpt.pth"):
        atomic_save({"start_epoch": 1}, tmp_path / name)
    with pytest.raises(UserError) as caught:
        default_checkpoint(tmp_path)
    assert (f"holds latest_ckpt.pth, last_epoch_ckpt.pth, epoch_1_ckpt.pth: pass one with -c, "
            f"e.g. -c {tmp_path / 'latest_ckpt.pth'}") in str(caught.value)
    atomic_save({"start_epoch": 1}, tmp_path / "best_ckpt.pth")
    assert default_checkpoint(tmp_path) == tmp_path / "best_ckpt.pth"


class _RunsCode:
    """Pickles as a call of ``pathlib.Path.touch``: loading it unsafely would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_holding_code_is_refused_for_safety_without_unsafe_advice(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile.pth"
    torch.save({"model": {}, "payload": _RunsCode(marker)}, hostile)
    with pytest.raises(UserError) as error:
        load_checkpoint_file(hostile)
    message = str(error.value)
    assert "hostile.pth" in message and "objects other than tensors" in message and "refused for safety" in message
    assert "weights_only" not in message and "\n" not in message and not marker.exists()


def test_a_truncated_checkpoint_is_named_without_unsafe_advice(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pth"
    torch.save({"model": {"w": torch.ones(100)}}, whole)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(UserError) as error:
        load_checkpoint_file(truncated)
    message = str(error.value)
    assert "truncated.pth" in message and "not a complete torch.save file" in message
    assert "weights_only" not in message and "\n" not in message
