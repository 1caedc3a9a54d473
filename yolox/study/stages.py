"""The stages a study shard goes through: the init run (``--init-from baseline``), the halving rungs, the schedules.

Each stage trains with the runner's :func:`~yolox.study.runner.execute_run`; a stage that needs another
shard's runs (the init run, every run at a rung) waits for them by polling the study folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from yolox.study.plan import Run, StudyPlan
from yolox.study.runner import EXIT_FAILED
from yolox.utils.errors import UserError

EXIT_OK = 0


def _all_reached(runs: list[Run], epoch: int) -> bool:
    from yolox.study.halving import run_reached

    return all(run_reached(run, epoch) for run in runs)


class StudyStages:
    """The stages of one shard: the init run (``--init-from baseline``), the halving rungs, the full schedules.

    Each stage returns None to go on, or the exit code the study stops with (Ctrl-C, a setting to fix).
    """

    def __init__(self, plan: StudyPlan, study_dir: Path, args: argparse.Namespace,
                 train_main: Callable[[list[str]], int], eval_main: Callable[[list[str]], int],
                 poll_seconds: float = 30.0) -> None:
        """``train_main`` / ``eval_main``: the train and eval commands each run is trained and scored with."""
        self.plan, self.study_dir, self.args, self.poll_seconds = plan, Path(study_dir), args, poll_seconds
        self.train_main, self.eval_main = train_main, eval_main
        self.code = EXIT_OK

    def _execute(self, plan: StudyPlan, run: Run, position: str, stop_after_epoch: int | None = None) -> int | None:
        from yolox.study.design import verify_checkpoint
        from yolox.study.runner import execute_run

        verify_checkpoint(plan.design, self.study_dir)
        outcome = execute_run(plan, run, self.args.device, self.args.devices, self.train_main, self.eval_main,
                              stop_after_epoch)
        if outcome.status == "failed":
            print(f"{position} {run.label}: failed ({outcome.message}); recorded, going on", file=sys.stderr, flush=True)
            self.code = EXIT_FAILED
        elif outcome.status == "stopped":
            print(f"{position} {run.label}: stopped ({outcome.message}, exit code {outcome.code}); "
                  "run the same command again to continue", file=sys.stderr, flush=True)
            return outcome.code
        return None

    def _wait(self, ready: Any, what: str) -> None:
        """Poll until ``ready()`` (another shard is doing the work), saying once what it waits for."""
        if ready():
            return
        print(f"waiting for {what} (another shard trains it)", flush=True)
        while not ready():
            time.sleep(self.poll_seconds)

    def prepare_init(self, shard_index: int) -> int | None:
        """``--init-from baseline``: train (shard 0) or wait for the init run, then record its checkpoint's sha256."""
        from yolox.study.design import init_run, record_init_checkpoint
        from yolox.study.runner import run_status

        if self.plan.design.kind != "baseline":
            return None
        init_plan, run = init_run(self.plan, self.study_dir)
        status = run_status(run)
        if shard_index == 0 and (status in ("todo", "interrupted") or (status == "failed" and self.args.retry_failed)):
            print(f"[init] {run.label}: {'continuing' if status == 'interrupted' else 'training'} the baseline's init "
                  "run (full schedule)", flush=True)
            stopped = self._execute(init_plan, run, "[init]")
            if stopped is not None:
                return stopped
        else:
            self._wait(lambda: run_status(run) in ("done", "failed"), f"the init run {run.label}")
        if run_status(run) == "failed":
            reason = json.loads((run.run_dir / "run.json").read_text()).get("reason")
            raise UserError(f"the init run {run.label} failed ({reason}): there is nothing to fine-tune from; fix it and "
                            "run again with --retry-failed")
        self.plan = record_init_checkpoint(self.plan, self.study_dir)
        return None

    def train_rungs(self, runs: list[Run]) -> int | None:
        """Train every surviving run to each rung, then decide which variants stop (skipped with --no-halving)."""
        from yolox.study.halving import decide_rung, load_decisions, record_decision, run_reached, stopped_variants

        if not self.plan.halving.active or self.args.no_halving:
            return None
        decisions = load_decisions(self.study_dir)
        for rung, epoch in enumerate(self.plan.halving.epochs):
            stopped = stopped_variants(decisions)
            if any(decision["rung"] == rung + 1 for decision in decisions):
                continue
            survivors = [variant.name for variant in self.plan.variants if variant.name not in stopped]
            pending = [run for run in runs if run.variant.name in survivors and not run_reached(run, epoch)]
            for position, run in enumerate(pending, 1):
                print(f"[rung {rung + 1}: {position}/{len(pending)}] {run.label}: training to epoch {epoch}", flush=True)
                code = self._execute(self.plan, run, f"[rung {rung + 1}]", stop_after_epoch=epoch)
                if code is not None:
                    return code
            everyone = [run for run in self.plan.runs(self.study_dir) if run.variant.name in survivors]
            self._wait(partial(_all_reached, everyone, epoch), f"every run to reach epoch {epoch}")
            decision = decide_rung(self.plan, self.study_dir, rung, survivors)
            decisions = record_decision(self.study_dir, decision)
            print(f"[rung {rung + 1}] epoch {epoch}: "
                  + (f"stopped {', '.join(decision['stopped'])}" if decision["stopped"] else "no variant stopped"),
                  flush=True)
        return None

    def train_to_the_end(self, runs: list[Run]) -> int:
        """Train (or continue) every run of the shard through its schedule and score it, as a study always did."""
        from yolox.study.halving import load_decisions, stopped_variants
        from yolox.study.runner import already_settled, corrupt_record_error, run_status

        stopped = {} if self.args.no_halving else stopped_variants(load_decisions(self.study_dir))
        for position, run in enumerate(runs, 1):
            label = f"[{position}/{len(runs)}]"
            status = run_status(run)
            if run.variant.name in stopped and status not in ("done", "failed"):
                print(f"{label} {run.label}: stopped by halving at rung {stopped[run.variant.name]['rung']} "
                      "(--no-halving continues it), skipped", flush=True)
                continue
            note = already_settled(status, self.args.retry_failed)
            if note:
                print(f"{label} {run.label}: {note}, skipped", flush=True)
                continue
            if status == "corrupt":
                print(f"{label} {run.label}: not done, {corrupt_record_error(run)}", flush=True)
            action = {"interrupted": "continuing", "failed": "retrying", "corrupt": "training again"}.get(status, "training")
            print(f"{label} {run.label}: {action}", flush=True)
            code = self._execute(self.plan, run, label)
            if code is not None:
                return code
        return self.code
