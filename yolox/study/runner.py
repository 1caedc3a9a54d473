"""Run a study's (variant, seed) pairs with the project's own train and eval commands, restartably.

A run is done when ``run.json`` exists in its folder (written after its best checkpoint was evaluated). A
run with ``latest_ckpt.pth`` but no ``run.json`` was interrupted and continues with ``--resume`` (the
trainer's exact resume). Each training session's start and end are kept in ``sessions.json``, so the
training time of a run that was killed and continued still counts every session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from yolox.core.metrics_log import METRICS_FILE, read_metrics
from yolox.study.plan import Run, StudyPlan
from yolox.utils.files import write_json_atomically

RUN_FILE = "run.json"
SESSIONS_FILE = "sessions.json"
EVAL_RESULTS_FILE = "eval_results.json"


def exp_flags(plan: StudyPlan) -> list[str]:
    """``-f FILE`` or ``-n NAME``, as the study was started with."""
    return ["-f", plan.exp] if plan.exp.endswith(".py") else ["-n", plan.exp]


def run_overrides(plan: StudyPlan, run: Run) -> list[str]:
    """The trailing exp overrides of one run: the study's, then the variant's, then its seed and folder."""
    return [*plan.overrides, *run.variant.override_args(), "seed", str(run.seed), "output_dir", str(run.variant_dir)]


def train_argv(plan: StudyPlan, run: Run, device: str, devices: int | None, resume: bool) -> list[str]:
    """The ``tools/train.py`` command line of ``run``."""
    argv = [*exp_flags(plan), "-expn", run.experiment_name, "-b", str(plan.batch_size), "--device", device]
    if devices is not None:
        argv += ["-d", str(devices)]
    if plan.fp16:
        argv.append("--fp16")
    if resume:
        argv.append("--resume")
    return argv + run_overrides(plan, run)


def eval_argv(plan: StudyPlan, run: Run, ckpt: Path, device: str, devices: int | None) -> list[str]:
    """The ``tools/eval.py`` command line scoring ``ckpt`` of ``run``."""
    argv = [*exp_flags(plan), "-expn", run.experiment_name, "-c", str(ckpt), "-b", str(plan.batch_size),
            "--device", device]
    if devices is not None:
        argv += ["-d", str(devices)]
    return argv + run_overrides(plan, run)


def run_status(run: Run) -> str:
    """``done``, ``interrupted`` (has a checkpoint to resume) or ``todo``."""
    if (run.run_dir / RUN_FILE).is_file():
        return "done"
    if (run.run_dir / "latest_ckpt.pth").is_file():
        return "interrupted"
    return "todo"


def _load_sessions(run: Run) -> list[dict]:
    path = run.run_dir / SESSIONS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def _close_open_sessions(run: Run, sessions: list[dict]) -> list[dict]:
    """A session without an end was killed: it ended at its last metrics record (or at once, if none)."""
    metrics_path = run.run_dir / METRICS_FILE
    last_record_time = max((record.get("time", 0.0) for record in read_metrics(metrics_path)), default=0.0) \
        if metrics_path.is_file() else 0.0
    for session in sessions:
        if session.get("end") is None:
            session["end"] = max(session["start"], last_record_time)
            session["killed"] = True
    return sessions


def training_seconds(sessions: list[dict]) -> float:
    """Wall time of all training sessions of a run."""
    return sum(session["end"] - session["start"] for session in sessions if session.get("end") is not None)


def best_checkpoint(run: Run) -> Path:
    """``best_ckpt.pth`` when an evaluation improved during training, else the final checkpoint."""
    for name in ("best_ckpt.pth", "last_epoch_ckpt.pth", "latest_ckpt.pth"):
        if (run.run_dir / name).is_file():
            return run.run_dir / name
    raise FileNotFoundError(f"{run.run_dir} has no checkpoint after training: see its train_log.txt")


def execute_run(
    plan: StudyPlan,
    run: Run,
    device: str,
    devices: int | None,
    train_main: Callable[[list[str]], int],
    eval_main: Callable[[list[str]], int],
) -> int:
    """Train (or continue) ``run``, evaluate its best checkpoint and write ``run.json``; return an exit code."""
    status = run_status(run)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    sessions = _close_open_sessions(run, _load_sessions(run))
    sessions.append({"start": time.time(), "end": None, "resumed": status == "interrupted"})
    write_json_atomically(run.run_dir / SESSIONS_FILE, sessions)
    logger.info(f"study run {run.label}: {'continuing' if status == 'interrupted' else 'starting'} training")
    code = train_main(train_argv(plan, run, device, devices, resume=status == "interrupted"))
    sessions[-1]["end"] = time.time()
    sessions[-1]["exit_code"] = code
    write_json_atomically(run.run_dir / SESSIONS_FILE, sessions)
    if code != 0:
        return code
    ckpt = best_checkpoint(run)
    code = eval_main(eval_argv(plan, run, ckpt, device, devices))
    if code != 0:
        return code
    results = json.loads((run.run_dir / EVAL_RESULTS_FILE).read_text())
    write_json_atomically(run.run_dir / RUN_FILE, {
        "variant": run.variant.name, "seed": run.seed, "checkpoint": ckpt.name,
        "train_seconds": round(training_seconds(sessions), 3), "sessions": len(sessions),
        "ap50_95": results.get("ap50_95"), "ap50": results.get("ap50"), "stats": results.get("stats", {}),
    })
    logger.info(f"study run {run.label}: done, AP50:95 {results.get('ap50_95', float('nan')):.4f}")
    return 0
