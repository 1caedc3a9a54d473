"""Checkpoint IO: atomic writes, weights-only loading, fine-tuning summary, RNG round trip."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger
from torch import nn

from yolox.utils.checkpoint import (
    atomic_save,
    capture_rng_state,
    load_checkpoint_file,
    load_ckpt,
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
    with pytest.raises(OSError, match="disk full"):
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
    assert len(lines) == 1
    line = lines[0]
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
