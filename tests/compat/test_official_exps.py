"""Exp files written in the official YOLOX style train and evaluate through tools/train.py and tools/eval.py."""

import json
from pathlib import Path

import pytest

EXPS = Path(__file__).resolve().parent / "exps"
CPU_FLAGS = ("--device", "cpu", "-b", "2")


@pytest.mark.slow
def test_voc_exp_trains_and_evaluates(voc_root, run_tool, tmp_path):
    env = {"YOLOX_DATADIR": str(voc_root.parent)}
    exp_file = str(EXPS / "voc_official_style.py")
    train = run_tool("train", "-f", exp_file, *CPU_FLAGS, env=env)
    run_dir = tmp_path / "YOLOX_outputs" / "voc_official_style"
    assert (run_dir / "best_ckpt.pth").is_file() and (run_dir / "last_epoch_ckpt.pth").is_file()
    assert "mAP" in (run_dir / "train_log.txt").read_text() + train.stderr
    run_tool("eval", "-f", exp_file, "-c", str(run_dir / "best_ckpt.pth"), *CPU_FLAGS, env=env)
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["metric"] == "voc" and 0.0 <= results["ap50"] <= 1.0


@pytest.mark.slow
def test_coco_custom_exp_trains_and_evaluates(coco_root, run_tool, tmp_path):
    env = {"YOLOX_DATADIR": str(coco_root.parent)}
    exp_file = str(EXPS / "coco_custom_official_style.py")
    run_tool("train", "-f", exp_file, *CPU_FLAGS, env=env)
    run_dir = tmp_path / "YOLOX_outputs" / "coco_custom_official_style"
    assert (run_dir / "best_ckpt.pth").is_file()
    assert "AP50" in (run_dir / "train_log.txt").read_text()
    run_tool("eval", "-f", exp_file, "-c", str(run_dir / "best_ckpt.pth"), *CPU_FLAGS, env=env)
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert 0.0 <= results["ap50_95"] <= results["ap50"] <= 1.0
