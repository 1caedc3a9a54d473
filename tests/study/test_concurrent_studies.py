"""Two study processes on one folder (the same shard, or overlapping shards) never train one run twice."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
RUNS = ("none/seed0", "none/seed1", "cam/seed0", "cam/seed1")


@pytest.mark.slow  # two study processes training four tiny runs between them
@pytest.mark.parametrize("shards", [("0/1", "0/1"), ("0/1", "1/2")], ids=["same-shard", "overlapping-shards"])
def test_two_study_processes_never_train_one_run_twice(tmp_path: Path, tiny_overrides, shards) -> None:
    study_dir = tmp_path / "study"
    command = [sys.executable, str(REPO_ROOT / "tools" / "study.py"), "-f", SHAPES_EXP, "--variants", "none,CAM",
               "--seeds", "0,1", "-b", "4", "--device", "cpu", "--study-dir", str(study_dir), "--bootstrap", "0"]
    # One epoch of four iterations per run.
    overrides = [*tiny_overrides, "max_epoch", "1", "warmup_epochs", "0", "no_aug_epochs", "0"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    studies = [subprocess.Popen([*command, "--shard", shard, *overrides], env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for shard in shards]
    outputs = [study.communicate(timeout=900)[0] for study in studies]
    assert [study.returncode for study in studies] == [0, 0], outputs
    for name in RUNS:
        run_dir = study_dir / name
        sessions = json.loads((run_dir / "sessions.json").read_text())
        assert len(sessions) == 1 and sessions[0]["exit_code"] == 0, (name, sessions, outputs)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [record["iteration"] for record in records if record["kind"] == "train"] == [2, 4], (name, outputs)
        assert [record["epoch"] for record in records if record["kind"] == "eval"] == [1], (name, outputs)
        run = json.loads((run_dir / "run.json").read_text())
        assert run["status"] == "done" and run["sessions"] == 1
        assert not (run_dir / "run.lock").exists()
