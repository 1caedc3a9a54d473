"""Study runs as submitit jobs: the SLURM array script, the requeue hook, and a 2x2 study through local subprocesses."""

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import submitit

from yolox.cli.study import main as study_main
from yolox.cli.train import main as train_main
from yolox.core.metrics_log import parse_metrics
from yolox.study.executor import JOBS_DIR, JobSettings, StudyRunJob, parse_time_minutes, submit_runs
from yolox.utils.errors import UserError

SHAPES_EXP = str(Path(__file__).resolve().parents[2] / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


@pytest.mark.parametrize("text, minutes", [("90", 90), ("24:00:00", 1440), ("1:30", 90), ("2-00:00", 2880),
                                           ("0:00:30", 1), ("1-12:00:00", 2160)])
def test_slurm_time_forms(text: str, minutes: int):
    assert parse_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "soon", "1:2:3:4", "0:00"])
def test_bad_slurm_times_are_refused(text: str):
    with pytest.raises(UserError, match="--slurm-time"):
        parse_time_minutes(text)


def _fake_slurm(bin_dir: Path, submitted: Path) -> None:
    """``srun`` and ``sbatch`` stand-ins: sbatch keeps the script it was given and answers like SLURM."""
    bin_dir.mkdir()
    scripts = {"srun": "#!/bin/sh\nexit 0\n",
               "sbatch": f"#!/bin/sh\ncp \"$1\" {submitted}\necho 'Submitted batch job 4242'\n"}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)


def test_slurm_executor_submits_one_array_with_the_flags(tmp_path: Path, monkeypatch):
    submitted = tmp_path / "submitted.sh"
    _fake_slurm(tmp_path / "bin", submitted)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    settings = JobSettings("slurm", partition="gpu", gpus_per_node=8, time="2-00:00", array_parallelism=3)
    jobs = submit_runs(settings, tmp_path / "study", [0, 1, 2, 3, 4], "auto", 8, train_main, train_main, 0)
    assert [job.job_id for job in jobs] == [f"4242_{index}" for index in range(5)]
    script = submitted.read_text()
    for line in ("#SBATCH --array=0-4%3", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=2880", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --signal=USR2@90",
                 f"#SBATCH --output={tmp_path / 'study' / JOBS_DIR}"):
        assert line in script, line


def test_without_slurm_the_slurm_executor_is_one_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert study_main(["-f", SHAPES_EXP, "--variants", "none,cam", "--seeds", "0", "--executor", "slurm",
                       "--study-dir", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--executor slurm: Could not detect \"srun\"" in err and "\n" not in err


def test_slurm_flags_need_the_slurm_executor(tmp_path: Path, capsys):
    assert study_main(["-f", SHAPES_EXP, "--variants", "none,cam", "--slurm-partition", "gpu",
                       "--study-dir", str(tmp_path)]) == 2
    assert "--slurm-partition only apply with --executor slurm" in capsys.readouterr().err


def test_a_preempted_job_requeues_a_fresh_job_of_the_same_run():
    job = StudyRunJob("/shared/study", 3, "auto", 8, train_main, train_main)
    again = job.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission) and again.args == () and again.kwargs == {}
    fresh = again.function
    assert fresh is not job and job.requeued and not fresh.requeued
    assert (fresh.study_dir, fresh.run_index, fresh.device, fresh.devices) == ("/shared/study", 3, "auto", 8)


def _task_of(controller_pid: int) -> int:
    """The pid of the one task a local submitit controller runs."""
    children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _evaluated_epochs(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [record["epoch"] for record in parse_metrics(path).records if record["kind"] == "eval"]  # a torn tail is left out


@pytest.mark.slow
def test_a_preempted_local_job_is_requeued_and_resumes(tmp_path: Path, tiny_overrides, monkeypatch):
    from yolox.cli.eval import main as eval_main
    from yolox.study.plan import build_plan, claim_study_dir

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    plan, study_dir = build_plan(SHAPES_EXP, None, "none", "0", batch_size=4, overrides=[*tiny_overrides, "max_epoch", "5"],
                                 study_dir=str(tmp_path / "study"))
    claim_study_dir(study_dir, plan, force=False)
    run = plan.runs(study_dir)[0]
    [job] = submit_runs(JobSettings("local"), study_dir, [0], "cpu", None, train_main, eval_main, 0)
    while 1 not in _evaluated_epochs(run.run_dir):  # the first epoch was checkpointed and evaluated
        assert not job.done(), job.stderr()
        time.sleep(0.2)
    os.kill(_task_of(int(job.job_id)), signal.SIGUSR2)  # what SLURM sends before pre-empting the job
    outcome = job.result()
    assert outcome["status"] == "done", outcome
    sessions = json.loads((run.run_dir / "sessions.json").read_text())
    assert [session.get("killed", False) for session in sessions] == [True, False] and sessions[1]["resumed"]
    assert "resuming from" in (run.run_dir / "train_log.txt").read_text()
    assert "requeued, the requeued job continues its training with --resume" in job.stderr()
    # A kill between an epoch's checkpoint and its evaluation leaves that epoch unevaluated; the rest is there.
    evaluated = _evaluated_epochs(run.run_dir)
    assert evaluated[0] == 1 and evaluated[-1] == 5 and len(set(evaluated)) >= 4
    assert json.loads((run.run_dir / "run.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_a_2x2_study_runs_as_local_submitit_jobs(tmp_path: Path, tiny_overrides, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    study_dir = tmp_path / "study"
    argv = ["-f", SHAPES_EXP, "--variants", "none,cam", "--seeds", "0,1", "-b", "4", "--device", "cpu",
            "--study-dir", str(study_dir), "--executor", "local", "--bootstrap", "0", *tiny_overrides, "max_epoch", "2"]
    assert study_main(argv) == 0
    for label in ("none/seed0", "cam/seed0", "none/seed1", "cam/seed1"):
        record = json.loads((study_dir / label / "run.json").read_text())
        assert record["status"] == "done" and 0.0 <= record["ap50_95"] <= 1.0
        assert len(json.loads((study_dir / label / "sessions.json").read_text())) == 1
    job_logs = sorted((study_dir / JOBS_DIR).glob("*_log.err"))
    assert len(job_logs) == 4  # each run trained in its own process
    assert sum("study run cam/seed1: starting training" in log.read_text() for log in job_logs) == 1
    report = json.loads((study_dir / "study.json").read_text())
    assert report["missing"] == [] and [row["seeds"] for row in report["variants"]] == [[0, 1], [0, 1]]
    mtime = (study_dir / "cam" / "seed1" / "run.json").stat().st_mtime_ns
    assert study_main(argv) == 0  # everything finished: nothing is submitted again
    assert (study_dir / "cam" / "seed1" / "run.json").stat().st_mtime_ns == mtime
    assert len(list((study_dir / JOBS_DIR).glob("*_log.err"))) == 4
