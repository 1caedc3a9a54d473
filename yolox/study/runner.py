"""Run a study's (variant, seed) pairs with the project's own train and eval commands, restartably.

A run is finished when a valid ``run.json`` exists in its folder: ``status: done`` after its final and best
checkpoints were scored (the plan's ``select`` names the one the study compares, its detections are kept in
``detections.npz``), or ``status: failed`` with the stage, iteration and reason. A run with
``latest_ckpt.pth`` but no ``run.json`` was interrupted and continues with ``--resume`` (the trainer's exact
resume); a run whose folder another live process holds (``run.lock``) is skipped. Each training
session's start and end are kept in ``sessions.json``, so the training time of a run that was killed and
continued still counts every session.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from yolox.core.lease import RunLease, RunLeaseHeld
from yolox.core.metrics_log import METRICS_FILE, read_metrics
from yolox.study import records
from yolox.study.plan import Run, StudyPlan
from yolox.utils.files import write_json_atomically
from yolox.utils.run_files import LAST_EPOCH_CKPT, LATEST_CKPT, trained_checkpoints

RUN_FILE = "run.json"
DETECTIONS_FILE = "detections.npz"
# The exit codes of the project's commands (as yolox.cli.common defines them).
EXIT_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130
SESSIONS_FILE = "sessions.json"
EVAL_RESULTS_FILE = "eval_results.json"


def exp_flags(plan: StudyPlan) -> list[str]:
    """``-f FILE`` or ``-n NAME``, as the study was started with."""
    return ["-f", plan.exp] if plan.exp.endswith(".py") else ["-n", plan.exp]


def run_overrides(plan: StudyPlan, run: Run) -> list[str]:
    """The trailing exp overrides of one run: the design's and the study's, then the variant's, its seed and folder."""
    return [*plan.schedule_overrides(), *run.variant.override_args(), "seed", str(run.seed), "output_dir", str(run.variant_dir)]


def train_argv(plan: StudyPlan, run: Run, device: str, devices: int | None, resume: bool,
               stop_after_epoch: int | None = None) -> list[str]:
    """The ``tools/train.py`` command line of ``run`` (fine-tuned from the design's checkpoint unless resumed)."""
    argv = [*exp_flags(plan), "-expn", run.experiment_name, "-b", str(plan.batch_size), "--device", device]
    init_checkpoint = plan.design.checkpoint(run.study_dir)
    if init_checkpoint is not None and not resume:
        argv += ["-c", str(init_checkpoint)]
    if stop_after_epoch is not None:
        argv += ["--stop-after-epoch", str(stop_after_epoch)]
    if devices is not None:
        argv += ["-d", str(devices)]
    if plan.fp16:
        argv.append("--fp16")
    if resume:
        argv.append("--resume")
    return argv + run_overrides(plan, run)


def eval_argv(plan: StudyPlan, run: Run, ckpt: Path, device: str, devices: int | None,
              detections: Path | None = None) -> list[str]:
    """The ``tools/eval.py`` command line scoring ``ckpt`` of ``run`` (keeping its detections in ``detections``)."""
    argv = [*exp_flags(plan), "-expn", run.experiment_name, "-c", str(ckpt), "-b", str(plan.batch_size),
            "--device", device]
    if devices is not None:
        argv += ["-d", str(devices)]
    if detections is not None:
        argv += ["--save-detections", str(detections)]
    return argv + run_overrides(plan, run)


def read_run_record(run: Run) -> dict | None:
    """The run's validated ``run.json``, or None when it has none (a bad one is a StudyFileError)."""
    path = run.run_dir / RUN_FILE
    return records.read_run_record(path) if path.is_file() else None


def run_status(run: Run) -> str:
    """``done``, ``failed`` (a recorded failure), ``corrupt`` (an unreadable run.json: not done),
    ``interrupted`` (has a checkpoint to resume) or ``todo``."""
    try:
        record = read_run_record(run)
    except records.StudyFileError:
        return "corrupt"
    if record is not None:
        return "failed" if record.get("status") == "failed" else "done"
    if (run.run_dir / LATEST_CKPT).is_file():
        return "interrupted"
    return "todo"


def already_settled(status: str, retry_failed: bool) -> str | None:
    """Why a run of ``status`` is not trained now ("finished before", "failed before ..."), or None to train it."""
    if status == "done":
        return "finished before"
    if status == "failed" and not retry_failed:
        return "failed before (--retry-failed trains it again)"
    return None


def runs_to_train(runs: list[Run], retry_failed: bool, not_trained: str = "skipped") -> list[Run]:
    """The runs still to train; each of the others is printed with why and ``not_trained``."""
    todo = []
    for run in runs:
        note = already_settled(run_status(run), retry_failed)
        if note:
            print(f"{run.label}: {note}, {not_trained}", flush=True)
        else:
            todo.append(run)
    return todo


def corrupt_record_error(run: Run) -> str:
    """The one-line error of a run whose run.json cannot be used."""
    try:
        read_run_record(run)
    except records.StudyFileError as err:
        return str(err)
    return ""


def _load_sessions(run: Run) -> list[dict]:
    path = run.run_dir / SESSIONS_FILE
    return records.read_sessions(path) if path.is_file() else []


def _close_open_sessions(run: Run, sessions: list[dict]) -> list[dict]:
    """A session without an end was killed: it ended at its last metrics record (or at once, if none)."""
    metrics_path = run.run_dir / METRICS_FILE
    last_record_time = max((record["time"] for record in read_metrics(metrics_path)
                                if records.is_non_negative(record.get("time"))), default=0.0) \
        if metrics_path.is_file() else 0.0
    for session in sessions:
        if session.get("end") is None:
            session["end"] = max(session["start"], last_record_time)
            session["killed"] = True
    return sessions


def training_seconds(sessions: list[dict]) -> float:
    """Wall time of all training sessions of a run."""
    return sum(session["end"] - session["start"] for session in sessions if session.get("end") is not None)


def scored_checkpoints(run: Run) -> dict[str, Path]:
    """``last``: the final (EMA) checkpoint of the schedule; ``best``: the evaluation-selected one, when written."""
    return trained_checkpoints(run.run_dir)


def git_commit(folder: Path) -> str | None:
    """The git commit of the checkout holding ``folder`` (with ``+dirty`` for local changes), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def audit_record(plan: StudyPlan, run: Run, device: str) -> dict[str, Any]:
    """What produced the run: the resolved exp's hash and overrides, versions, commit, device."""
    import torch

    import yolox
    from yolox.study.plan import load_variant_exp

    overrides = run_overrides(plan, run)
    exp = load_variant_exp(plan.exp if plan.exp.endswith(".py") else None,
                           None if plan.exp.endswith(".py") else plan.exp, overrides)
    settings = json.dumps({key: repr(value) for key, value in sorted(exp.public_settings().items())})
    return {
        "exp": plan.exp, "exp_sha256": hashlib.sha256(settings.encode()).hexdigest(), "overrides": overrides,
        "yolox_version": yolox.__version__, "git_commit": git_commit(Path(yolox.__file__).resolve().parent),
        "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": device, "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "python_version": platform.python_version(), "host": platform.node(),
    }


def failure_reason(run: Run, code: int, collected: list[str]) -> str:
    """The one-line reason of a failed training: the error it logged, else the last ERROR of train_log.txt."""
    lines = [line for message in collected for line in message.splitlines() if line.strip()]
    if not lines and (run.run_dir / "train_log.txt").is_file():
        logged = [line for line in (run.run_dir / "train_log.txt").read_text(errors="replace").splitlines()
                  if "| ERROR" in line]
        lines = [logged[-1].split(" - ", 1)[-1]] if logged else []
    return lines[0].strip() if lines else f"training exited with code {code}"


def failure_iteration(run: Run, reason: str) -> int | None:
    """The iteration a failure names (``at iteration N``), else the last one metrics.jsonl recorded."""
    match = re.search(r"iteration (\d+)", reason)
    if match:
        return int(match[1])
    path = run.run_dir / METRICS_FILE
    iterations = [record["iteration"] for record in read_metrics(path) if records.is_int(record.get("iteration"))] \
        if path.is_file() else []
    return max(iterations) if iterations else None


def _archive_record(run: Run, prefix: str) -> None:
    """Keep a failed or corrupt record as <prefix><k>.json before the run is tried again."""
    record = run.run_dir / RUN_FILE
    if record.is_file():
        attempt = 1 + len(list(run.run_dir.glob(f"{prefix}*.json")))
        record.replace(run.run_dir / f"{prefix}{attempt}.json")


@dataclass(frozen=True)
class RunOutcome:
    """What one call of :func:`execute_run` ended with: ``done``, ``failed``, ``stopped``, ``paused`` (and its code)
    or ``skipped``."""

    status: str
    code: int
    message: str = ""


def _record_failure(plan: StudyPlan, run: Run, stage: str, reason: str, sessions: list[dict], device: str) -> RunOutcome:
    iteration = failure_iteration(run, reason) if stage == "train" else None
    write_json_atomically(run.run_dir / RUN_FILE, {
        "status": "failed", "variant": run.variant.name, "seed": run.seed, "select": plan.select, "stage": stage,
        "iteration": iteration, "reason": reason, "train_seconds": round(training_seconds(sessions), 3),
        "sessions": len(sessions), "audit": audit_record(plan, run, device)})
    logger.error(f"study run {run.label}: failed in {stage} (iteration {iteration}): {reason}")
    return RunOutcome("failed", 1, reason)


def _evaluate(plan: StudyPlan, run: Run, which: str, ckpt: Path, device: str, devices: int | None,
              eval_main: Callable[[list[str]], int], detections: Path | None) -> dict | None:
    """Score one checkpoint with the eval command; its eval_results.json is kept as eval_<which>.json."""
    if eval_main(eval_argv(plan, run, ckpt, device, devices, detections)) != 0:
        return None
    results_path = run.run_dir / f"eval_{which}.json"
    (run.run_dir / EVAL_RESULTS_FILE).replace(results_path)
    return json.loads(results_path.read_text())


def _under_the_run_lease(execute: Callable[..., RunOutcome]) -> Callable[..., RunOutcome]:
    """Run ``execute(plan, run, ...)`` holding ``run``'s folder lease; ``skipped`` when another process holds it
    or finished the run meanwhile."""

    @functools.wraps(execute)
    def leased(plan: StudyPlan, run: Run, *args: Any, **kwargs: Any) -> RunOutcome:
        try:
            lease = RunLease(run.run_dir).acquire()
        except RunLeaseHeld as held:
            logger.warning(f"study run {run.label}: skipped, another process is training it ({held.holder_text})")
            return RunOutcome("skipped", 0, f"held by {held.holder_text}")
        with lease:
            if run_status(run) == "done":
                logger.info(f"study run {run.label}: skipped, another process finished it")
                return RunOutcome("skipped", 0, "finished by another process")
            return execute(plan, run, *args, **kwargs)

    return leased


@_under_the_run_lease
def execute_run(
    plan: StudyPlan,
    run: Run,
    device: str,
    devices: int | None,
    train_main: Callable[[list[str]], int],
    eval_main: Callable[[list[str]], int],
    stop_after_epoch: int | None = None,
) -> RunOutcome:
    """Train (or continue) ``run``, score its final and best checkpoints and write ``run.json``.

    With ``stop_after_epoch`` the training stops after that epoch (a halving rung) and the run is ``paused``.

    A training that fails (non-finite loss, an exception, a worker killed) or an evaluation that fails is
    recorded as ``status: failed`` with its stage, iteration and one-line reason: a study outcome, not a stop.
    Ctrl-C and a user error (a setting to fix) stop the study instead (``stopped``), with nothing recorded.
    """
    status, sessions = open_session(run)
    errors: list[str] = []
    handler = logger.add(lambda message: errors.append(message.record["message"]), level="ERROR", format="{message}")
    try:
        code = train_main(train_argv(plan, run, device, devices, resume=status == "interrupted",
                                     stop_after_epoch=stop_after_epoch))
    except Exception as err:  # noqa: BLE001 - any crash of one run is that run's outcome, the study goes on
        code, errors[:0] = EXIT_FAILED, [f"{type(err).__name__}: {err}"]
    finally:
        logger.remove(handler)
    close_session(run, sessions, code)
    return record_outcome(plan, run, code, errors, sessions, device, devices, eval_main, stop_after_epoch)


def open_session(run: Run, note: dict | None = None) -> tuple[str, list[dict]]:
    """Start a training session of ``run`` (a failed or corrupt record is archived first): its status and
    sessions."""
    status = run_status(run)
    if status in ("failed", "corrupt"):
        _archive_record(run, "failed_attempt" if status == "failed" else "corrupt_run")
        status = run_status(run)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    sessions = _close_open_sessions(run, _load_sessions(run))
    sessions.append({"start": time.time(), "end": None, "resumed": status == "interrupted", **(note or {})})
    write_json_atomically(run.run_dir / SESSIONS_FILE, sessions)
    logger.info(f"study run {run.label}: {'continuing' if status == 'interrupted' else 'starting'} training")
    return status, sessions


def close_session(run: Run, sessions: list[dict], code: int) -> None:
    """Record the end and exit code of the session :func:`open_session` started."""
    sessions[-1]["end"] = time.time()
    sessions[-1]["exit_code"] = code
    write_json_atomically(run.run_dir / SESSIONS_FILE, sessions)


def record_outcome(plan: StudyPlan, run: Run, code: int, errors: list[str], sessions: list[dict], device: str,
                   devices: int | None, eval_main: Callable[[list[str]], int],
                   stop_after_epoch: int | None = None) -> RunOutcome:
    """After a training that exited with ``code`` (logging ``errors``): score the run and write ``run.json``
    (``paused`` instead when it was asked to stop after ``stop_after_epoch`` and did)."""
    if code in (EXIT_INTERRUPTED, EXIT_USER_ERROR):
        return RunOutcome("stopped", code, "interrupted" if code == EXIT_INTERRUPTED else "a setting to fix")
    if code != 0:
        return _record_failure(plan, run, "train", failure_reason(run, code, errors), sessions, device)
    if stop_after_epoch is not None and not (run.run_dir / LAST_EPOCH_CKPT).is_file():
        return RunOutcome("paused", 0, f"stopped after epoch {stop_after_epoch}")
    checkpoints = scored_checkpoints(run)
    if plan.select not in checkpoints:
        return _record_failure(plan, run, "eval", f"no {plan.select} checkpoint after training", sessions, device)
    scored: dict[str, dict] = {}
    for which, ckpt in checkpoints.items():
        keep = run.run_dir / DETECTIONS_FILE if which == plan.select else None
        try:
            results = _evaluate(plan, run, which, ckpt, device, devices, eval_main, keep)
        except Exception as err:  # noqa: BLE001 - as for training
            return _record_failure(plan, run, "eval", f"{ckpt.name}: {type(err).__name__}: {err}", sessions, device)
        if results is None:
            return _record_failure(plan, run, "eval", f"evaluating {ckpt.name} failed", sessions, device)
        scored[which] = {"checkpoint": ckpt.name, "ap50_95": results.get("ap50_95"), "ap50": results.get("ap50"),
                         "stats": results.get("stats", {})}
    chosen = scored[plan.select]
    write_json_atomically(run.run_dir / RUN_FILE, {
        "status": "done", "variant": run.variant.name, "seed": run.seed, "select": plan.select,
        "checkpoint": chosen["checkpoint"], "ap50_95": chosen["ap50_95"], "ap50": chosen["ap50"],
        "stats": chosen["stats"], "scored": scored, "detections": DETECTIONS_FILE,
        "train_seconds": round(training_seconds(sessions), 3), "sessions": len(sessions),
        "audit": audit_record(plan, run, device),
    })
    logger.info(f"study run {run.label}: done, AP50:95 ({plan.select}) {chosen['ap50_95']:.4f}")
    return RunOutcome("done", 0)
