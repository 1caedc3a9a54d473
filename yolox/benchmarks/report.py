"""Measurement helpers shared by the benchmarks: repeated timing, robust summaries, table and JSON reports."""

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from yolox.utils.files import write_text_atomically


def time_repeated(fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times; returns the seconds of each timed call."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


@dataclass
class Summary:
    """Median and spread of repeated measurements of one quantity."""

    median: float
    minimum: float
    maximum: float
    spread: float  # (max - min) / median: the relative width of the observed range
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Summary":
        """Summarise a non-empty list of samples."""
        if not samples:
            raise ValueError("cannot summarise an empty list of measurements")
        median = statistics.median(samples)
        low, high = min(samples), max(samples)
        return cls(median, low, high, (high - low) / median if median else 0.0, list(samples))

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON."""
        return {"median": self.median, "min": self.minimum, "max": self.maximum, "spread": self.spread,
                "samples": self.samples}


def environment(device: str = "cpu") -> dict[str, Any]:
    """What the numbers depend on: threads, device, library versions, machine and time."""
    info: dict[str, Any] = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import cv2

        info["opencv"] = cv2.__version__
        info["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


@dataclass
class BenchmarkReport:
    """The outcome of one benchmark: a table of rows plus the settings and environment behind it."""

    name: str
    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    env: dict[str, Any]

    def table(self, floatfmt: str = ".2f") -> str:
        """The rows as a plain-text table (the keys of the first row are the columns)."""
        if not self.rows:
            return f"{self.name}: no results"
        columns = list(self.rows[0])
        body = [[row.get(column, "") for column in columns] for row in self.rows]
        return tabulate(body, headers=columns, floatfmt=floatfmt)

    def as_dict(self) -> dict[str, Any]:
        """Everything in plain Python types for JSON."""
        return {"benchmark": self.name, "settings": self.settings, "environment": self.env, "results": self.rows}

    def write_json(self, path: str | None) -> Path:
        """Write the report to ``path`` (default ``benchmark_<name>.json`` here); returns the path."""
        target = Path(path) if path else Path(f"benchmark_{self.name.replace('-', '_')}.json")
        write_text_atomically(target, json.dumps(self.as_dict(), indent=2, default=_plain) + "\n")
        return target


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars, tuples of them and paths."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
