"""Planning a study before it runs: the seeds an effect needs per comparison, with and without the correction, and the cost.

The noise comes from a pilot study (the sd of its paired differences, and its measured training time) or from
an assumed per-run seed sd, which gives a difference sd of sqrt(2) x seed sd (no help from the pairing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tabulate import tabulate

from yolox.study.stats import ALPHA, POWER, compare_to_baseline, seeds_needed
from yolox.utils.errors import UserError


@dataclass(frozen=True)
class Noise:
    """The sd of the paired differences per variant (a fraction of AP), where it came from, and hours per run."""

    sd_by_variant: dict[str, float]
    pooled_sd: float
    source: str
    hours_per_run: float | None
    fallback_label: str = "pooled over the pilot"


def noise_from_pilot(pilot_dir: Path) -> Noise:
    """The sd of each comparison's paired differences in a finished study, their pooled sd, and its mean train time."""
    from yolox.study.plan import load_plan
    from yolox.study.report import PRIMARY, paired_values, read_runs

    plan = load_plan(Path(pilot_dir))
    runs = read_runs(plan, Path(pilot_dir)).runs
    primary = {name: {seed: entry["figures"].get(PRIMARY, float("nan")) for seed, entry in by_seed.items()}
               for name, by_seed in runs.items()}
    comparisons = compare_to_baseline(paired_values(plan, primary), "none")
    usable = {row.variant: (row.sd, len(row.seeds)) for row in comparisons
              if row.sd is not None and math.isfinite(row.sd) and row.sd > 0}
    if not usable:
        raise UserError(f"pilot {pilot_dir}: no comparison has two or more paired seeds with differing results, so it "
                        "measures no noise; give --seed-sd instead")
    # Pooled over comparisons, each weighted by its degrees of freedom.
    pooled = math.sqrt(sum(sd**2 * (count - 1) for sd, count in usable.values()) /
                       sum(count - 1 for _, count in usable.values()))
    seconds = [entry["train_seconds"] for by_seed in runs.values() for entry in by_seed.values()
               if entry.get("train_seconds") is not None]
    hours = float(np.mean(seconds)) / 3600.0 if seconds else None
    return Noise({name: sd for name, (sd, _) in usable.items()}, pooled, f"pilot {pilot_dir}", hours)


def noise_from_seed_sd(seed_sd_points: float, hours_per_run: float | None) -> Noise:
    """An assumed per-run seed sd in AP points: differences of two independent runs, sd sqrt(2) x seed sd."""
    if not seed_sd_points > 0:
        raise UserError(f"--seed-sd {seed_sd_points}: give the seed-to-seed sd of one run's AP in AP points, e.g. 0.2")
    sd = math.sqrt(2.0) * seed_sd_points / 100.0
    return Noise({}, sd, f"--seed-sd {seed_sd_points:g} AP points (difference sd sqrt(2) x that: pairing not credited)",
                 hours_per_run, "assumed")


def plan_table(variants: list[str], baseline: str, effect_points: float, noise: Noise, correction: str,
               alpha: float = ALPHA, power: float = POWER,
               cost_text: Callable[[int], str] | None = None) -> tuple[list[dict], str]:
    """Seeds needed per comparison with and without the correction, the runs and hours; as rows and as text.

    ``cost_text(seeds)`` words the cost of the study's design (default: runs x the noise's hours per run).
    """
    if not effect_points > 0:
        raise UserError(f"--effect {effect_points}: give the smallest AP difference worth finding in AP points, e.g. 0.5")
    effect = effect_points / 100.0
    compared = [name for name in variants if name != baseline]
    if not compared:
        raise UserError("--variants needs at least one variant besides the baseline")
    count = len(compared)
    # Holm's first step (and Bonferroni's every step) tests at alpha / m: planning for it keeps the power.
    corrected_alpha = alpha / count if correction in ("holm", "bonferroni") else alpha
    rows = []
    for name in compared:
        sd = noise.sd_by_variant.get(name, noise.pooled_sd)
        rows.append({"variant": name, "sd": sd, "sd_source": "pilot" if name in noise.sd_by_variant else noise.fallback_label,
                     "seeds_uncorrected": seeds_needed(effect, sd, alpha, power),
                     "seeds_corrected": seeds_needed(effect, sd, corrected_alpha, power)})
    needed = [row["seeds_corrected"] for row in rows]
    seeds = None if None in needed else max(needed)
    runs = None if seeds is None else seeds * len(variants)
    hours = None if runs is None or noise.hours_per_run is None else runs * noise.hours_per_run
    table = tabulate([[row["variant"], f"{100 * row['sd']:.2f} ({row['sd_source']})",
                       row["seeds_uncorrected"] or "> 10000", row["seeds_corrected"] or "> 10000"] for row in rows],
                     ["variant", "sd of differences (AP points)", "seeds, no correction",
                      f"seeds, {correction} (alpha {corrected_alpha:.4g})"], tablefmt="github", disable_numparse=True)
    cost = (f"{seeds} seeds x {len(variants)} variants = {runs} runs"
            + (f", about {hours:.1f} hours of training (at {noise.hours_per_run:.2f} h per run)" if hours is not None
               else " (give --hours-per-run or a --pilot with recorded train times for the hours)")
            if seeds is not None else "more than 10,000 seeds: the effect is far below the noise")
    if seeds is not None and cost_text is not None:
        cost = cost_text(seeds)
    text = (f"Seeds to find a true difference of {effect_points:g} AP points with {100 * power:.0f}% power per comparison "
            f"(paired t test, two-sided, noncentral t), {count} comparisons against `{baseline}`; noise from "
            f"{noise.source}.\n\n{table}\n\nWith the correction: {cost}.\n")
    return rows, text
