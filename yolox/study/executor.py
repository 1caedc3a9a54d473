"""A study's runs as jobs through ``submitit``: a SLURM job array (``slurm``) or local subprocesses (``local``).

Each job trains and scores one (variant, seed) run with :func:`yolox.study.runner.execute_run`, in the same
folder, with the same restarts (a run found interrupted continues with ``--resume``) as a study started by
hand or by ``--shard``. A job that SLURM pre-empts or that reaches its time limit gets submitit's signal;
its :meth:`StudyRunJob.checkpoint` requeues a fresh job of the run, which then finds it interrupted and
resumes it from its last checkpoint. Submitit's pickles and logs go to ``<study_dir>/_jobs`` (a name no
variant can take: variant names start with a letter or digit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from yolox.utils.errors import UserError

try:
    import submitit
except ImportError:  # the optional extra: the error below says how to install it
    submitit = None

EXECUTORS = ("local", "slurm")
JOBS_DIR = "_jobs"
DEFAULT_TIME = "24:00:00"
# A long training continues over many time limits; each requeue after a timeout counts against this.
MAX_TIMEOUT_REQUEUES = 100
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")


def parse_time_minutes(text: str) -> int:
    """SLURM's time forms as whole minutes: ``MINUTES``, ``HH:MM``, ``HH:MM:SS`` or ``D-HH:MM[:SS]``."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    match = _TIME.match(text)
    if not match:
        raise UserError(f"--slurm-time {text!r}: give minutes (90), HH:MM[:SS] (24:00:00) or D-HH:MM[:SS] (2-00:00)")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = days * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    if total < 1:
        raise UserError(f"--slurm-time {text!r}: the time limit must be at least one minute")
    return total


@dataclass(frozen=True)
class JobSettings:
    """Where and how the jobs run: the executor and SLURM's partition, GPUs, time limit and array parallelism."""

    executor: str
    partition: str | None = None
    gpus_per_node: int | None = None
    time: str = DEFAULT_TIME
    array_parallelism: int | None = None

    def check(self) -> None:
        """Refuse settings SLURM would refuse later (or that mean nothing for the executor)."""
        if self.executor not in EXECUTORS:
            raise UserError(f"--executor {self.executor!r}: use local or slurm")
        if self.gpus_per_node is not None and self.gpus_per_node < 0:
            raise UserError(f"--slurm-gpus-per-node {self.gpus_per_node}: give 0 or more GPUs")
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise UserError(f"--slurm-array-parallelism {self.array_parallelism}: give at least 1 job at a time")
        parse_time_minutes(self.time)


def require_submitit() -> Any:
    """The submitit module, or a UserError saying how to install it."""
    if submitit is None:
        raise UserError("--executor needs submitit: pip install -e \".[slurm]\" (or pip install submitit)")
    return submitit


def make_executor(settings: JobSettings, folder: Path, gpus_available: int) -> Any:
    """The submitit executor of ``settings``; its files go to ``folder``.

    One job is one run: one node, one task, ``gpus_per_node`` GPUs (default: all ``gpus_available`` for a
    local job, none asked for on SLURM, where the partition's default applies).
    """
    module = require_submitit()
    settings.check()
    try:
        executor = module.AutoExecutor(folder=folder, cluster=settings.executor,
                                       slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES)
    except RuntimeError as err:  # submitit's "Could not detect srun"
        raise UserError(f"--executor {settings.executor}: {err} (start it on a SLURM login node; --executor local "
                        "runs the jobs on this machine)") from None
    parameters: dict[str, Any] = {"name": "yolox_study", "timeout_min": parse_time_minutes(settings.time),
                                  "nodes": 1, "tasks_per_node": 1}
    gpus = settings.gpus_per_node if settings.gpus_per_node is not None else (
        gpus_available if settings.executor == "local" else None)
    if gpus is not None:
        parameters["gpus_per_node"] = gpus
    if settings.executor == "slurm":
        if settings.partition:
            parameters["slurm_partition"] = settings.partition
        if settings.array_parallelism is not None:
            parameters["slurm_array_parallelism"] = settings.array_parallelism
    executor.update_parameters(**parameters)
    return executor


class Requeued(BaseException):
    """Ends a job whose run submitit requeued (a BaseException, so the study records no failure for it)."""

    def __init__(self, code: int) -> None:
        """``code``: the exit code submitit's signal handler asked for (the local executor's requeue code)."""
        super().__init__(code)
        self.code = code


class StudyRunJob:
    """One run of a study as a submitit job: picklable (folder, run index, devices, the two commands)."""

    def __init__(self, study_dir: str, run_index: int, device: str, devices: int | None,
                 train_main: Callable[[list[str]], int], eval_main: Callable[[list[str]], int]) -> None:
        """``train_main`` / ``eval_main``: the train and eval commands (module-level functions, so they pickle)."""
        self.study_dir, self.run_index, self.device, self.devices = study_dir, run_index, device, devices
        self.train_main, self.eval_main = train_main, eval_main
        self.requeued = False

    def _unless_requeued(self, command: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        """``command``, raising :class:`Requeued` when submitit requeued the job while it ran.

        Submitit's handler ends the process with SystemExit, which a command turns into its exit code; without
        this the study would record the run as failed with that code instead of leaving it to the requeued job.
        """
        def run(argv: list[str]) -> int:
            code = command(argv)
            if self.requeued:
                raise Requeued(code)
            return code

        return run

    def __call__(self) -> dict[str, Any]:
        """Train and score the run unless it is done; the outcome as plain data for the submitting process."""
        from yolox.study.design import verify_checkpoint
        from yolox.study.plan import load_plan
        from yolox.study.runner import execute_run, run_status

        plan = load_plan(Path(self.study_dir))
        run = plan.runs(Path(self.study_dir))[self.run_index]
        if run_status(run) == "done":
            return {"label": run.label, "status": "done", "code": 0, "message": "finished before"}
        verify_checkpoint(plan.design, Path(self.study_dir))  # a fine-tuned study starts from the recorded file
        try:
            outcome = execute_run(plan, run, self.device, self.devices, self._unless_requeued(self.train_main),
                                  self._unless_requeued(self.eval_main))
        except Requeued as stop:
            raise SystemExit(stop.code) from None
        return {"label": run.label, "status": outcome.status, "code": outcome.code, "message": outcome.message}

    def checkpoint(self) -> Any:
        """Called by submitit on pre-emption or time-out: requeue a fresh job of this run, which resumes it."""
        self.requeued = True
        logger.warning(f"study run {self.run_index} of {self.study_dir}: pre-empted or out of time; requeued, "
                       "the requeued job continues its training with --resume")
        again = StudyRunJob(self.study_dir, self.run_index, self.device, self.devices, self.train_main, self.eval_main)
        return require_submitit().helpers.DelayedSubmission(again)


def submit_runs(settings: JobSettings, study_dir: Path, run_indices: list[int], device: str, devices: int | None,
                train_main: Callable[[list[str]], int], eval_main: Callable[[list[str]], int],
                gpus_available: int) -> list[Any]:
    """Submit one job per run, as one job array; return the submitit jobs in the order of ``run_indices``."""
    executor = make_executor(settings, Path(study_dir) / JOBS_DIR, gpus_available)
    try:
        with executor.batch():
            jobs = [executor.submit(StudyRunJob(str(study_dir), index, device, devices, train_main, eval_main))
                    for index in run_indices]
    except FileNotFoundError as err:
        raise UserError(f"--executor {settings.executor}: {err.filename or err} not found; --executor slurm is "
                        "started on a machine that can run sbatch (a SLURM login node)") from None
    except require_submitit().core.utils.FailedSubmissionError as err:
        raise UserError(f"--executor {settings.executor}: the submission was refused: {str(err).strip()}") from None
    return jobs


def job_outcome(job: Any) -> dict[str, Any]:
    """Wait for ``job`` and return its outcome; a job that died gives a ``failed`` outcome naming its log."""
    try:
        return job.result()
    except require_submitit().core.utils.UncompletedJobError as err:
        last_line = next((line for line in reversed(str(err).splitlines()) if line.strip()), "no output")
        return {"label": None, "status": "failed", "code": 1,
                "message": f"job {job.job_id} ended without a result ({last_line.strip()}); log {job.paths.stderr}"}


def run_jobs(settings: JobSettings, study_dir: Path, runs: list[Any], device: str, devices: int | None,
             retry_failed: bool, train_main: Callable[[list[str]], int], eval_main: Callable[[list[str]], int]) -> int:
    """Submit the unfinished ``runs`` as jobs, wait for them and print each outcome; the study's exit code."""
    from yolox.study.runner import EXIT_FAILED, EXIT_INTERRUPTED, runs_to_train

    todo = runs_to_train(runs, retry_failed, "not submitted")
    if not todo:
        return 0
    gpus_available = 0
    if settings.executor == "local" and device != "cpu":
        import torch

        gpus_available = torch.cuda.device_count()
    if devices is None and settings.gpus_per_node:
        devices = settings.gpus_per_node  # one run trains on all the GPUs its job asked for
    jobs = submit_runs(settings, study_dir, [run.index for run in todo], device, devices, train_main, eval_main,
                       gpus_available)
    kind = "a SLURM job array" if settings.executor == "slurm" else "local jobs (one process each)"
    print(f"study {study_dir}: {len(jobs)} runs submitted as {kind}: "
          + ", ".join(f"{run.label} job {job.job_id}" for run, job in zip(todo, jobs))
          + f"; logs in {Path(study_dir) / JOBS_DIR}", flush=True)
    code = 0
    try:
        for position, (run, job) in enumerate(zip(todo, jobs), 1):
            outcome = job_outcome(job)
            line = f"[{position}/{len(jobs)}] {run.label}: {outcome['status']}"
            if outcome["status"] == "done":
                print(line, flush=True)
                continue
            print(f"{line} ({outcome['message']})", flush=True)
            code = code or (EXIT_FAILED if outcome["status"] == "failed" else outcome["code"])
    except KeyboardInterrupt:
        print(f"stopped waiting: submitted SLURM jobs keep running (squeue -u $USER); "
              f"tools/study.py report {study_dir} reports what finished", flush=True)
        return EXIT_INTERRUPTED
    return code
