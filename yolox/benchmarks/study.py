"""Throughput of a study's variants trained one by one against the same variants trained in lockstep.

Both go through the real :class:`yolox.core.trainer.Trainer` on the same generated COCO-like set: each
variant alone (a run of its own), and all of them as one lockstep group fed by one data stream. The timed
stretch starts after the warm-up iterations, so model building and the loader start are left out. The
configurations take turns within each repetition, so a machine that gets busier or quieter during the
benchmark moves all of them alike.
"""

import copy
import statistics
import time
from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolox.benchmarks.model import exp_variant
from yolox.benchmarks.report import BenchmarkReport, environment


class _Measured(Exception):
    """The timed iterations are done: leave the training loop."""


def _timed_trainer(exp: Any, args: Namespace, others: list, iterations: int) -> tuple[list[float], list[float]]:
    """Train ``exp`` (with ``others`` in lockstep) for ``iterations``; each iteration's seconds and data seconds."""
    from yolox.core.trainer import Trainer

    stamps: list[float] = []
    data_seconds: list[float] = []

    class TimingTrainer(Trainer):
        def after_iter(self) -> None:
            stamps.append(time.perf_counter())
            data_seconds.append(self.members[0].meter["data_time"].latest)
            super().after_iter()
            if len(stamps) > iterations:
                raise _Measured

    trainer = TimingTrainer(exp, args, lockstep_with=others)
    try:
        trainer.train()
    except _Measured:
        pass
    return [end - start for start, end in zip(stamps, stamps[1:])], data_seconds[1:]


def _train_args(batch_size: int, device: str) -> Namespace:
    """The train flags a benchmark run needs: defaults, a fresh start, no extra logger."""
    return Namespace(batch_size=batch_size, device=device, experiment_name="bench", resume=False, ckpt=None,
                     start_epoch=None, fp16=False, amp=None, logger="none", cache=None, opts=[])


def measure_study_throughput(exp: Any, variants: Sequence[str | None], data_dir: Path, scratch: Path,
                             batch_size: int, workers: Sequence[int], iterations: int, warmup: int, repeats: int,
                             device: str = "cpu") -> BenchmarkReport:
    """Seconds per iteration of each variant alone, their sum, and the lockstep group, for each worker count.

    ``warmup`` iterations precede the ``iterations`` timed ones of every training; the data share is the time
    an iteration waits for its batch (loading, augmenting, moving it) over the iteration's time.
    """
    names = ["none" if variant is None else variant for variant in variants]
    rows = []
    for num_workers in workers:
        alone: dict[str, list[float]] = {name: [] for name in names}
        alone_data: dict[str, list[float]] = {name: [] for name in names}
        group: list[float] = []
        group_data: list[float] = []
        for repeat in range(repeats):
            args = _train_args(batch_size, device)
            folder = scratch / f"w{num_workers}_r{repeat}"
            for member in _member_exps(exp, variants, names, num_workers, data_dir, folder / "alone"):
                seconds, data = _timed_trainer(member, args, [], warmup + iterations)
                name = "none" if member.attention is None else member.attention
                alone[name] += seconds[warmup:]
                alone_data[name] += data[warmup:]
            members = _member_exps(exp, variants, names, num_workers, data_dir, folder / "lockstep")
            seconds, data = _timed_trainer(members[0], args, members[1:], warmup + iterations)
            group += seconds[warmup:]
            group_data += data[warmup:]
        sequential = sum(statistics.median(alone[name]) for name in names)
        lockstep = statistics.median(group)
        for name in names:
            iteration = statistics.median(alone[name])
            rows.append(_row(num_workers, f"{name} alone", iteration, statistics.median(alone_data[name])))
        rows.append(_row(num_workers, f"sequential ({len(names)} runs)", sequential,
                         sum(statistics.median(alone_data[name]) for name in names)))
        rows.append({**_row(num_workers, f"lockstep ({len(names)} members)", lockstep, statistics.median(group_data)),
                     "x sequential": lockstep / sequential})
    settings = {"exp": getattr(exp, "exp_name", "?"), "input_size": list(exp.input_size), "batch_size": batch_size,
                "variants": names, "timed_iterations": iterations, "warmup_iterations": warmup,
                "repeats (interleaved)": repeats}
    return BenchmarkReport("study-throughput", rows, settings, environment(device))


def _member_exps(exp: Any, variants: Sequence[str | None], names: Sequence[str], workers: int, data_dir: Path,
                 folder: Path) -> list:
    """A fresh copy of ``exp`` per variant, reading ``data_dir`` with ``workers`` and training into ``folder/<name>``."""
    built = []
    for name, variant in zip(names, variants):
        member = exp_variant(copy.deepcopy(exp), variant)
        member.data_num_workers = workers
        member.data_dir = str(data_dir)
        member.output_dir = str(folder / name)
        built.append(member)
    return built


def _row(workers: int, configuration: str, seconds: float, data_seconds: float) -> dict[str, Any]:
    """One line of the table: seconds and iterations per second, and the data pipeline's share."""
    return {"workers": workers, "training": configuration, "s/iter": seconds, "iter/s": 1.0 / seconds,
            "data share": data_seconds / seconds, "x sequential": ""}
