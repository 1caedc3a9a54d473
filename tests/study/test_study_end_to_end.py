"""A 3-variant x 2-seed study on generated data: a diverging variant, a killed run and its restart, the report."""

import json
from pathlib import Path

import pytest

from yolox.cli.study import main as study_main
from yolox.core.trainer import Trainer
from yolox.study.stats import compare_to_baseline

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


class SimulatedKill(BaseException):
    """Stands for a killed process (nothing the study can catch): raised after cam/seed1 saved its epoch-2 checkpoint."""


@pytest.mark.slow
def test_study_runs_restarts_and_reports(tmp_path: Path, tiny_overrides, monkeypatch):
    study_dir = tmp_path / "study"
    # "boom" trains SE at a learning rate 8,000 times the shapes exp's: its loss or weights go non-finite at once.
    argv = ["-f", SHAPES_EXP, "--variants", "none,CAM,boom=attention:se,basic_lr_per_img:10.0", "--seeds", "0,1",
            "-b", "4", "--device", "cpu", "--study-dir", str(study_dir), *tiny_overrides]
    original_after_epoch = Trainer.after_epoch

    def crash_in_cam_seed1(trainer):
        original_after_epoch(trainer)
        if trainer.file_name == study_dir / "cam" / "seed1" and trainer.epoch == 1:
            raise SimulatedKill

    monkeypatch.setattr(Trainer, "after_epoch", crash_in_cam_seed1)
    with pytest.raises(SimulatedKill):
        study_main(argv)
    monkeypatch.setattr(Trainer, "after_epoch", original_after_epoch)
    finished = {name: (study_dir / name / "run.json").stat().st_mtime_ns
                for name in ("none/seed0", "cam/seed0", "boom/seed0", "none/seed1")}
    boom = json.loads((study_dir / "boom" / "seed0" / "run.json").read_text())
    assert boom["status"] == "failed" and boom["stage"] == "train" and "non-finite" in boom["reason"]
    assert boom["iteration"] >= 1 and boom["audit"]["exp_sha256"] and boom["audit"]["torch_version"]
    crashed = study_dir / "cam" / "seed1"
    assert not (crashed / "run.json").exists() and (crashed / "latest_ckpt.pth").is_file()

    # The partial report lists the interrupted run and still reports the rest.
    assert study_main(["report", str(study_dir)]) == 0
    assert "cam/seed1 (running, or interrupted" in (study_dir / "study.md").read_text()

    assert study_main(argv) == 1  # the study finished, with failed runs
    for name, mtime in finished.items():
        assert (study_dir / name / "run.json").stat().st_mtime_ns == mtime, f"{name} was run again"
    assert "resuming from" in (crashed / "train_log.txt").read_text()
    sessions = json.loads((crashed / "sessions.json").read_text())
    assert [session.get("killed", False) for session in sessions] == [True, False]
    records = [json.loads(line) for line in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert {record["epoch"] for record in records if record["kind"] == "eval"} == {1, 2, 3}
    assert all("attn.dark3" in record["attention"] for record in records if record["kind"] == "train")

    # The report against a hand computation from each run's evaluation.
    ap = {(variant, seed): json.loads((study_dir / variant / f"seed{seed}" / "eval_last.json").read_text())["ap50_95"]
          for variant in ("none", "cam") for seed in (0, 1)}
    report = json.loads((study_dir / "study.json").read_text())
    rows = {row["variant"]: row for row in report["variants"]}
    assert rows["cam"]["AP50:95"]["mean"] == pytest.approx((ap["cam", 0] + ap["cam", 1]) / 2)
    comparison = report["comparisons"][0]
    assert comparison["differences"] == pytest.approx([ap["cam", 0] - ap["none", 0], ap["cam", 1] - ap["none", 1]])
    expected = compare_to_baseline({"cam": {seed: (ap["cam", seed], ap["none", seed]) for seed in (0, 1)}}, "holm")[0]
    assert comparison["verdict"] == expected.verdict
    assert report["missing"] == []
    assert rows["cam"]["params"] > rows["none"]["params"] and rows["cam"]["cpu_ms"] > 0
    assert rows["boom"]["failed"] == [0, 1] and report["failures"]["boom"]["1"]["stage"] == "train"
    markdown = (study_dir / "study.md").read_text()
    assert "Correction: **Holm's step-down**" in markdown and "Failed runs: boom/seed0 (train" in markdown
    assert "Sensitivity" in markdown and "| boom " in markdown
    # --retry-failed trains the failed runs again and keeps their first record.
    assert study_main(["--retry-failed", *argv]) == 1
    assert json.loads((study_dir / "boom" / "seed0" / "failed_attempt1.json").read_text())["status"] == "failed"
    assert (study_dir / "none" / "seed0" / "run.json").stat().st_mtime_ns == finished["none/seed0"]
    cam_run = json.loads((study_dir / "cam" / "seed0" / "run.json").read_text())
    assert cam_run["select"] == "last" and cam_run["checkpoint"] == "last_epoch_ckpt.pth"
    assert set(cam_run["scored"]) == {"last", "best"} and (study_dir / "cam" / "seed0" / "detections.npz").is_file()
