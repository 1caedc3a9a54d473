"""This project's training step side by side with the official YOLOX's, in one run.

Two worker processes (:mod:`yolox.benchmarks.step_worker`), one per interpreter, train the same model (this
side writes its seed-0 weights, the official side loads them strictly) on the same fixed batch with the same
number of threads. They take turns: each turn runs ``steps_per_turn`` steps on one side while the other
waits, so a machine that gets busier or quieter moves both alike. Their losses are compared too: with equal
weights and inputs the two codes should give the same numbers step after step.
"""

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import torch

from yolox.benchmarks.model import synthetic_images, synthetic_targets
from yolox.benchmarks.report import BenchmarkReport, environment
from yolox.utils.errors import UserError

WORKER = Path(__file__).with_name("step_worker.py")
PHASES = ("forward", "backward", "optimizer", "step")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _Worker:
    """A worker process answering ``{"steps": k}`` requests with its phase times."""

    def __init__(self, python: str, argv: list[str], environ: dict[str, str], side: str) -> None:
        self.side = side
        self.process = subprocess.Popen([python, str(WORKER), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=environ)
        self.hello = self._answer()

    def _answer(self) -> dict[str, Any]:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            code = self.process.wait()
            raise UserError(f"the {self.side} train-step worker exited with code {code} (its error is printed above)")
        return json.loads(line)

    def run(self, steps: int) -> dict[str, Any]:
        """Time ``steps`` steps; their phase seconds and losses."""
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(json.dumps({"steps": steps}) + "\n")
        stdin.flush()
        return self._answer()

    def close(self) -> None:
        """Close stdin; the worker leaves its loop and exits."""
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _environ(with_project: bool, threads: int) -> dict[str, str]:
    """The worker's environment: this project importable or not, an OpenMP pool of ``threads``."""
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environ["OMP_NUM_THREADS"] = str(threads)
    if with_project:
        environ["PYTHONPATH"] = str(PROJECT_ROOT)
    return environ


def measure_against_official(official_python: str, exp_name: str, size: tuple[int, int], batch_size: int,
                             num_classes: int, threads: int, turns: int, steps_per_turn: int, warmup: int,
                             scratch: Path, device: str = "cpu",
                             boxes_per_image: tuple[int, int] = (10, 30),
                             overrides: Sequence[str] = ()) -> BenchmarkReport:
    """Median seconds of each phase of a training step, this project's and the official's, and their ratio.

    ``overrides`` (exp key value pairs) apply to this project's side only, e.g. ``bn_memory_saving False``.
    """
    if not Path(official_python).is_file():
        raise UserError(f"--official-python {official_python}: no such interpreter; make one with "
                        "`make official-venv` (a venv holding yolox==0.3.0 beside this project's torch)")
    batch_file, weights_file = scratch / "batch.pt", scratch / "weights.pt"
    torch.save({"images": synthetic_images(batch_size, size),
                "targets": synthetic_targets(batch_size, size, num_classes, boxes_per_image)}, batch_file)
    common = ["--exp-name", exp_name, "--batch", str(batch_file), "--weights", str(weights_file),
              "--threads", str(threads), "--device", device]
    ours = _Worker(sys.executable, [*common, "--save-weights", "--overrides", *overrides], _environ(True, threads),
                   "this project's")
    official = _Worker(official_python, common, _environ(False, threads), "official")
    if Path(official.hello["file"]).resolve().is_relative_to(PROJECT_ROOT / "yolox"):  # .venv-official is inside
        raise UserError(f"--official-python {official_python} imports this project's yolox "
                        f"({official.hello['file']}), not the official package: use a venv holding yolox==0.3.0")
    samples: dict[str, dict[str, list[float]]] = {"ours": {p: [] for p in PHASES}, "official": {p: [] for p in PHASES}}
    losses: dict[str, list[float]] = {"ours": [], "official": []}
    try:
        sides = [("ours", ours), ("official", official)]
        for _, worker in sides:
            worker.run(warmup)
        for turn in range(turns):
            for side, worker in sides if turn % 2 == 0 else sides[::-1]:
                answer = worker.run(steps_per_turn)
                for phase in PHASES:
                    samples[side][phase] += answer["phases"][phase]
                losses[side] += answer["losses"]
    finally:
        ours.close()
        official.close()
    rows = []
    for phase in PHASES:
        mine, theirs = statistics.median(samples["ours"][phase]), statistics.median(samples["official"][phase])
        rows.append({"phase": phase, "ours ms": mine * 1e3, "official ms": theirs * 1e3, "ours / official": mine / theirs})
    steps_compared = min(len(losses["ours"]), len(losses["official"]))
    settings = {"model": exp_name, "input": f"{size[0]}x{size[1]}", "batch": batch_size, "threads": threads,
                "boxes per image": f"{boxes_per_image[0]}-{boxes_per_image[1]}",
                "our overrides": " ".join(overrides) or "none",
                "turns": turns, "steps per turn": steps_per_turn, "warm-up steps": warmup,
                "ours": f"{ours.hello['yolox']} ({ours.hello['file']})",
                "official": f"{official.hello['yolox']} ({official.hello['file']})",
                "equal losses": f"{sum(a == b for a, b in zip(losses['ours'], losses['official']))} of {steps_compared}",
                "largest relative loss difference": max(abs(a - b) / abs(b) for a, b in
                                                        zip(losses["ours"], losses["official"])),
                "losses (ours / official)": [losses["ours"], losses["official"]]}
    return BenchmarkReport("train-step-vs-official", rows, settings, environment(device))
