"""Paired learning curves: at each evaluation epoch, every variant's AP50:95 difference to the baseline.

A curve says whether a deficit shrinks with training. Per epoch the report gives the mean paired difference
over the seeds evaluated there and its pointwise 95% t-interval (not corrected over epochs or variants: a
picture of the course, not a test). The area under each run's AP50:95 curve, divided by the epochs it spans
(the run's mean AP over its evaluations, by the trapezoidal rule), is a secondary metric of the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from yolox.core.metrics_log import METRICS_FILE, parse_metrics
from yolox.study.records import check_eval_record
from yolox.study.stats import has_no_spread, t_interval

CURVE_CONFIDENCE = 0.95


def epoch_curve(run_dir: Path) -> tuple[dict[int, float], list[int]]:
    """AP50:95 (fraction) by epoch from a run's metrics.jsonl, and the numbers of its bad lines.

    A repeated epoch (after a resume) keeps the last. A torn last line is dropped silently; a line that is
    not a record, or an evaluation record without a whole epoch and an AP fraction, is a bad line.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return {}, []
    parsed = parse_metrics(path)
    curve, bad = {}, list(parsed.bad_lines)
    for record, line in zip(parsed.records, parsed.record_lines):
        if record.get("kind") != "eval":
            continue
        if not check_eval_record(record):
            bad.append(line)
        elif record.get("ap50_95") is not None:
            curve[int(record["epoch"])] = float(record["ap50_95"])
    return curve, sorted(bad)


def curve_area(curve: dict[int, float]) -> float | None:
    """Area under the AP-by-epoch curve over the epochs it spans, divided by that span (one epoch: its AP)."""
    if not curve:
        return None
    epochs = sorted(curve)
    if len(epochs) == 1:
        return curve[epochs[0]]
    values = [curve[epoch] for epoch in epochs]
    return float(np.trapezoid(values, epochs) / (epochs[-1] - epochs[0]))


def paired_curves(curves: dict[str, dict[int, dict[int, float]]], baseline: str,
                  confidence: float = CURVE_CONFIDENCE) -> dict[str, list[dict[str, Any]]]:
    """``curves[variant][seed][epoch]`` as, per variant and epoch, the paired differences' mean and t-interval."""
    base = curves.get(baseline, {})
    result: dict[str, list[dict[str, Any]]] = {}
    for name, by_seed in curves.items():
        if name == baseline:
            continue
        epochs = sorted({epoch for seed, curve in by_seed.items() if seed in base for epoch in curve})
        rows = []
        for epoch in epochs:
            seeds = sorted(seed for seed, curve in by_seed.items()
                           if seed in base and epoch in curve and epoch in base[seed])
            if not seeds:
                continue
            differences = [by_seed[seed][epoch] - base[seed][epoch] for seed in seeds]
            low = high = None
            if len(differences) >= 2 and not has_no_spread(differences):
                low, high = t_interval(differences, confidence)
            rows.append({"epoch": epoch, "seeds": seeds, "differences": differences,
                         "mean": float(np.mean(differences)), "ci_low": low, "ci_high": high})
        result[name] = rows
    return result


def curve_lines(paired: dict[str, list[dict[str, Any]]], baseline: str) -> list[str]:
    """The report's curve table: per variant and evaluation epoch, the mean paired difference and its interval."""
    if not any(paired.values()):
        return []
    lines = [f"Paired learning curves: AP50:95 minus `{baseline}`'s at each evaluation epoch, AP points, mean over "
             f"the seeds evaluated there and its pointwise {CURVE_CONFIDENCE:.0%} t-interval (not corrected over "
             "epochs or variants):", "", "| variant | epoch | pairs | mean | interval |", "|---|---|---|---|---|"]
    for name, rows in paired.items():
        for row in rows:
            interval = "-" if row["ci_low"] is None else f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
            lines.append(f"| {name} | {row['epoch']} | {len(row['seeds'])} | {100 * row['mean']:+.2f} | {interval} |")
    return [*lines, ""]


def plot_paired_curves(axis: Any, paired: dict[str, list[dict[str, Any]]], baseline: str, margin: float,
                       colors: dict[str, str] | None = None) -> None:
    """One line per variant: the mean paired difference against epoch, its interval as a band (AP points).

    ``colors`` (variant -> matplotlib colour) keeps each variant's colour of the other panels.
    """
    drawn = False
    for name, rows in paired.items():
        if not rows:
            continue
        drawn = True
        epochs = [row["epoch"] for row in rows]
        line = axis.plot(epochs, [100 * row["mean"] for row in rows], marker="o", label=name,
                         color=(colors or {}).get(name))[0]
        banded = [row for row in rows if row["ci_low"] is not None]
        if banded:
            axis.fill_between([row["epoch"] for row in banded], [100 * row["ci_low"] for row in banded],
                              [100 * row["ci_high"] for row in banded], color=line.get_color(), alpha=0.2)
    axis.axhline(0.0, color="tab:red", lw=1)
    if margin > 0:
        axis.axhline(-100 * margin, color="tab:blue", ls=":", lw=1)
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"AP50:95 minus {baseline} (AP points)")
    axis.set_title(f"paired difference by epoch ({CURVE_CONFIDENCE:.0%} band)")
    if drawn:
        axis.legend()
