"""Lockstep studies (``tools/study.py --lockstep``): the variants of a seed trained by one process, one data stream.

Each batch is loaded and augmented once and fed to every member of the group (see
:class:`yolox.core.trainer.Trainer`); each member still writes its own run folder, and is then scored and
recorded exactly like a run trained alone (:func:`yolox.study.runner.record_outcome`), so the report,
``tools/eval.py``, resuming and the statistics work unchanged. A member that fails stops alone.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from itertools import groupby

from loguru import logger

from yolox.core.lease import RunLease, RunLeaseHeld
from yolox.study.plan import Run, StudyPlan
from yolox.study.runner import (
    EXIT_FAILED,
    RunOutcome,
    close_session,
    open_session,
    record_outcome,
    run_overrides,
    run_status,
    runs_to_train,
    train_argv,
)
from yolox.utils.checkpoint import load_checkpoint_file
from yolox.utils.errors import UserError
from yolox.utils.run_files import LATEST_CKPT, trained_checkpoints

EXIT_OK = 0


def lockstep_groups(runs: list[Run], size: int | None) -> list[list[Run]]:
    """The runs of each seed, in plan order, cut into groups of at most ``size`` (all of the seed's when None)."""
    if size is not None and size < 1:
        raise UserError(f"--lockstep-size {size}: give the number of variants trained together, at least 1")
    groups = []
    for _, seed_runs in groupby(sorted(runs, key=lambda run: (run.seed, run.index)), key=lambda run: run.seed):
        seed_runs = list(seed_runs)
        step = size or len(seed_runs)
        groups += [seed_runs[start:start + step] for start in range(0, len(seed_runs), step)]
    return groups


def resume_iteration(run: Run) -> int | None:
    """The iteration of the run's ``latest_ckpt.pth`` (None without one: the run starts afresh)."""
    path = run.run_dir / LATEST_CKPT
    if not path.is_file():
        return None
    return int(load_checkpoint_file(path, map_location="cpu").get("iteration", -1))


def resumable_groups(group: list[Run]) -> list[list[Run]]:
    """``group`` split so that the members of each part continue from the same iteration (a process killed
    while it wrote the members' checkpoints may leave them one epoch apart)."""
    iterations = {run.index: resume_iteration(run) for run in group}
    ordered = sorted(group, key=lambda run: (iterations[run.index] is not None, iterations[run.index] or 0, run.index))
    return [list(part) for _, part in groupby(ordered, key=lambda run: iterations[run.index])]


def execute_group(plan: StudyPlan, group: list[Run], device: str, devices: int | None,
                  train_main: Callable[..., int],
                  eval_main: Callable[[list[str]], int]) -> list[tuple[Run, RunOutcome]]:
    """Holding each member's folder lease, train (or continue) ``group`` in lockstep, then score and record each
    member as a run of its own; a member that another process holds or finished meanwhile is skipped."""
    with contextlib.ExitStack() as leases:
        outcomes, members = [], []
        for run in group:
            try:
                leases.enter_context(RunLease(run.run_dir).acquire())
            except RunLeaseHeld as held:
                logger.warning(f"study run {run.label}: skipped, another process is training it ({held.holder_text})")
                outcomes.append((run, RunOutcome("skipped", 0, f"held by {held.holder_text}")))
                continue
            if run_status(run) == "done":
                outcomes.append((run, RunOutcome("skipped", 0, "finished by another process")))
            else:
                members.append(run)
        if members:
            outcomes += list(zip(members, _train_group(plan, members, device, devices, train_main, eval_main)))
        return outcomes


def _train_group(plan: StudyPlan, group: list[Run], device: str, devices: int | None,
                 train_main: Callable[..., int], eval_main: Callable[[list[str]], int]) -> list[RunOutcome]:
    """Train ``group`` in lockstep, then score and record each member (see :func:`execute_group`)."""
    labels = [run.label for run in group]
    opened = [open_session(run, note={"lockstep": labels}) for run in group]
    resume = opened[0][0] == "interrupted"
    collected: list[tuple[str | None, str]] = []  # (member label or None, message) of each error logged here

    def collect(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        collected.append((record["extra"].get("member"), record["message"]))

    handler = logger.add(collect, level="ERROR", format="{message}")
    crash: list[str] = []
    try:
        code = train_main(train_argv(plan, group[0], device, devices, resume=resume),
                          lockstep=[run_overrides(plan, run) for run in group[1:]])
    except Exception as err:  # noqa: BLE001 - a crash of the group is the outcome of each of its runs
        code, crash = EXIT_FAILED, [f"{type(err).__name__}: {err}"]
    finally:
        logger.remove(handler)
    outcomes = []
    for run, (_, sessions) in zip(group, opened):
        close_session(run, sessions, code)
        own = [message for label, message in collected if label == run.label]
        member_code, errors = code, [*crash, *own, *(message for label, message in collected if label is None)]
        if code == 0:
            # The group went on without a member that failed: it left no final checkpoint.
            member_code = 0 if "last" in trained_checkpoints(run.run_dir) else EXIT_FAILED
            errors = own
        outcomes.append(record_outcome(plan, run, member_code, errors, sessions, device, devices, eval_main))
    return outcomes


def run_in_lockstep(plan: StudyPlan, runs: list[Run], device: str, devices: int | None, size: int | None,
                    retry_failed: bool, train_main: Callable[..., int],
                    eval_main: Callable[[list[str]], int]) -> int:
    """Train the unfinished runs seed by seed in lockstep groups; the study's exit code (as run by run)."""
    pending = runs_to_train(runs, retry_failed)
    groups = [part for group in lockstep_groups(pending, size) for part in resumable_groups(group)]
    code = EXIT_OK
    for position, group in enumerate(groups, 1):
        names = ", ".join(run.label for run in group)
        print(f"[group {position}/{len(groups)}] {names}: training in lockstep", flush=True)
        for run, outcome in execute_group(plan, group, device, devices, train_main, eval_main):
            if outcome.status == "failed":
                print(f"[group {position}/{len(groups)}] {run.label}: failed ({outcome.message}); recorded, "
                      "going on", file=sys.stderr, flush=True)
                code = EXIT_FAILED
            elif outcome.status == "stopped":
                print(f"[group {position}/{len(groups)}] stopped ({outcome.message}, exit code {outcome.code}); "
                      "run the same command again to continue", file=sys.stderr, flush=True)
                return outcome.code
    return code
