"""The study report: per-variant figures, paired comparisons with the baseline, their verdicts, failures, looks.

Written as ``study.md`` (also printed), ``study.csv``, ``study.json`` and, with matplotlib, ``study.png``.
Every AP stored in ``study.csv`` and ``study.json`` is a fraction (0 to 1, as COCOeval gives it); ``study.md``
prints AP in % and differences in AP points (percentage points), as its headers say.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tabulate import tabulate

from yolox.core.metrics_log import METRICS_FILE
from yolox.study.costs import costs_of, measurement_note, read_variants
from yolox.study.curves import curve_area, curve_lines, epoch_curve, paired_curves, plot_paired_curves
from yolox.study.halving import compute_saved, halving_lines, load_decisions, stopped_variants
from yolox.study.plan import Run, StudyPlan, load_plan
from yolox.study.records import StudyFileError, load_json_file, read_looks, read_run_record
from yolox.study.runner import RUN_FILE
from yolox.study.stats import (
    ALPHA,
    VERDICT_EQUIVALENT,
    VERDICT_HELPS,
    VERDICT_HELPS_BY_MARGIN,
    VERDICT_HURTS,
    benjamini_hochberg_intervals,
    compare_to_baseline,
    sample_std,
    verdict_words,
)
from yolox.utils.files import atomic_path, write_json_atomically
from yolox.utils.run_files import LATEST_CKPT

# Report column -> key in run.json's COCO "stats" (fractions; -1 means no objects of that size).
AP_COLUMNS = {"AP50:95": "AP50:95", "AP50": "AP50", "AP75": "AP75", "APs": "AP_small", "APm": "AP_medium",
              "APl": "AP_large"}
PRIMARY = "AP50:95"
# AP AUC: the area under a run's AP50:95-by-epoch curve over its span (its mean AP over training, yolox.study.curves).
CURVE_AREA = "AP AUC"
SECONDARY = ("AP50", "AP75", "APs", "APm", "APl", CURVE_AREA)
LOOKS_FILE = "looks.json"
PLOT_HINT = "study.png needs matplotlib: pip install -e \".[plot]\" and run tools/study.py report STUDY_DIR"
CORRECTION_NAMES = {"holm": "Holm's step-down", "bonferroni": "Bonferroni", "none": "no correction"}
EXPLORATORY_AFTER_LOOK = "exploratory (seeds added after a look)"
DECISIVE_VERDICTS = (VERDICT_HELPS_BY_MARGIN, VERDICT_HELPS, VERDICT_EQUIVALENT, VERDICT_HURTS)


def run_figures(run_record: dict) -> dict[str, float]:
    """A finished run's AP figures as fractions; a COCO -1 (no objects of that size) is left out."""
    stats = run_record.get("stats") or {}
    figures = {}
    for column, key in AP_COLUMNS.items():
        value = stats.get(key)
        if value is None and column == PRIMARY:
            value = run_record.get("ap50_95")
        if value is None and column == "AP50":
            value = run_record.get("ap50")
        if value is not None and (value >= 0 or math.isnan(value)):
            figures[column] = float(value)
    return figures


@dataclass
class StudyReport:
    """Everything the report shows, as plain data (AP as fractions)."""

    plan: StudyPlan
    runs: dict[str, dict[int, dict]]
    failures: dict[str, dict[int, dict]]
    variants: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    sensitivity: list[dict[str, Any]]
    secondary: dict[str, dict[str, dict]]
    missing: list[str]
    look: dict[str, Any]
    bootstrap: dict[str, Any]
    effect: float | None = None
    curves: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    bad_metrics: list[str] = field(default_factory=list)
    cost_note: str = ""
    paired_curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    halving: list[dict[str, Any]] = field(default_factory=list)
    compute_saved: dict[str, Any] = field(default_factory=dict)
    study_dir: Path = Path(".")
    markdown: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``study.json``)."""
        return {"plan": self.plan.to_dict(), "ap_unit": "fraction", "runs": self.runs, "failures": self.failures,
                "variants": self.variants, "comparisons": self.comparisons, "sensitivity": self.sensitivity,
                "secondary": self.secondary, "missing": self.missing, "look": self.look, "bootstrap": self.bootstrap,
                "effect": self.effect, "corrupt": self.corrupt, "bad_metrics": self.bad_metrics,
                "cost_note": self.cost_note,
                "curves": {name: {str(seed): curve for seed, curve in by_seed.items()}
                           for name, by_seed in self.curves.items()},
                "paired_curves": self.paired_curves, "halving": self.halving, "compute_saved": self.compute_saved}


def _mean_std(values: list[float]) -> dict[str, float | None]:
    spread = sample_std(values)
    return {"mean": float(np.mean(values)) if values else None, "std": None if math.isnan(spread) else spread}


class RecordedRuns(NamedTuple):
    """What the run folders of a study hold, read as validated data."""

    runs: dict[str, dict[int, dict]]  # finished runs by variant and seed (their run.json, with "figures")
    failures: dict[str, dict[int, dict]]  # recorded failures: stage, iteration, reason
    missing: list[str]  # runs not run yet, or running / interrupted
    curves: dict[str, dict[int, dict[int, float]]]  # AP50:95 by epoch of each finished run
    corrupt: list[str]  # runs whose run.json cannot be used: label and the one-line error
    bad_metrics: list[str]  # metrics.jsonl files with bad lines: label, count and line numbers


def read_runs(plan: StudyPlan, study_dir: Path, stopped: dict[str, dict] | None = None) -> RecordedRuns:
    """Finished, failed, missing and corrupt runs, the AP curves and the metrics files' bad lines.

    ``stopped`` (variant -> halving decision) names why a stopped variant's runs are missing.
    """
    recorded = RecordedRuns({variant.name: {} for variant in plan.variants},
                            {variant.name: {} for variant in plan.variants}, [],
                            {variant.name: {} for variant in plan.variants}, [], [])
    for run in plan.runs(study_dir):
        record_path = run.run_dir / RUN_FILE
        if not record_path.is_file():
            recorded.missing.append(_missing_note(run, (stopped or {}).get(run.variant.name)))
            continue
        try:
            record = read_run_record(record_path)
        except StudyFileError as err:
            recorded.corrupt.append(f"{run.label}: {err}")
            continue
        if record.get("status", "done") == "failed":
            recorded.failures[run.variant.name][run.seed] = {key: record.get(key)
                                                             for key in ("stage", "iteration", "reason")}
            continue
        curve, bad_lines = epoch_curve(run.run_dir)
        figures = run_figures(record)
        area = curve_area(curve)
        if area is not None:
            figures[CURVE_AREA] = area
        recorded.runs[run.variant.name][run.seed] = {**record, "figures": figures}
        recorded.curves[run.variant.name][run.seed] = curve
        if bad_lines:
            shown = ", ".join(map(str, bad_lines[:5])) + (", ..." if len(bad_lines) > 5 else "")
            recorded.bad_metrics.append(f"{run.label}/{METRICS_FILE}: {len(bad_lines)} bad line(s) skipped "
                                        f"(line {shown})")
    return recorded


def _variant_rows(plan: StudyPlan, runs: dict, failures: dict, costs: dict) -> list[dict[str, Any]]:
    baseline_cost = costs.get(plan.baseline, {})
    rows = []
    for variant in plan.variants:
        finished = runs[variant.name]
        row: dict[str, Any] = {"variant": variant.name, "seeds": sorted(finished), "failed": sorted(failures[variant.name])}
        for column in AP_COLUMNS:
            row[column] = _mean_std([entry["figures"][column] for entry in finished.values() if column in entry["figures"]])
        gaps = [entry["scored"]["best"]["ap50_95"] - entry["scored"]["last"]["ap50_95"] for entry in finished.values()
                if {"best", "last"} <= set(entry.get("scored", {}))]
        row["best_minus_last"] = _mean_std(gaps)
        cost = costs.get(variant.name, {})
        row.update({key: cost.get(key) for key in ("params", "gflops", "cpu_ms", "gpu_ms")})
        for key in ("cpu_ms", "gpu_ms"):
            base = baseline_cost.get(key)
            row[f"{key}_overhead"] = cost[key] / base - 1.0 if cost.get(key) is not None and base else None
        seconds = [entry["train_seconds"] for entry in finished.values() if entry.get("train_seconds") is not None]
        row["train_seconds"] = float(np.mean(seconds)) if seconds else None
        rows.append(row)
    return rows


def paired_values(plan: StudyPlan, values: dict[str, dict[int, float]]) -> dict[str, dict[int, tuple[float, float]]]:
    """``values[variant][seed]`` as the (variant, baseline) pairs of the seeds both have."""
    base = values[plan.baseline]
    return {variant.name: {seed: (value, base[seed]) for seed, value in values[variant.name].items() if seed in base}
            for variant in plan.variants if variant.name != plan.baseline}


def _worst_of_seed_imputed(plan: StudyPlan, runs: dict, failures: dict) -> dict[str, dict[int, float]]:
    """Primary AP by variant and seed with each failed run scored as the worst AP of its seed's finished runs."""
    values = {name: {seed: entry["figures"].get(PRIMARY, float("nan")) for seed, entry in by_seed.items()}
              for name, by_seed in runs.items()}
    worst = {}
    for seed in plan.seeds:
        finished = [by_seed[seed] for by_seed in values.values() if seed in by_seed]
        if finished:
            worst[seed] = min(finished)
    for name, by_seed in failures.items():
        for seed in by_seed:
            if seed in worst:
                values[name][seed] = worst[seed]
    return values


def build_looks(study_dir: Path, plan: StudyPlan, comparisons: list[dict]) -> dict[str, Any]:
    """Log this report as a look in ``looks.json``; say whether seeds were added after an earlier look."""
    path = study_dir / LOOKS_FILE
    looks = read_looks(path) if path.is_file() else []
    earlier_seed_lists = [look["plan_seeds"] for look in looks]
    added_after_look = any(set(seeds) < set(plan.seeds) for seeds in earlier_seed_lists)
    look = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "number": len(looks) + 1,
            "plan_seeds": list(plan.seeds), "pairs": {entry["variant"]: entry["seeds"] for entry in comparisons},
            "verdicts": {entry["variant"]: entry["verdict"] for entry in comparisons},
            "seeds_added_after_a_look": added_after_look}
    write_json_atomically(path, [*looks, look])
    return look


def bootstrap_comparisons(study_dir: Path, plan: StudyPlan, runs: dict, comparisons: list[dict],
                          replicates: int) -> dict[str, Any]:
    """Two-level (seeds x images) bootstrap intervals of the primary differences, from each run's detections.

    Each interval is the percentile interval at its comparison's corrected level. Returns what was done (or
    why not) for the report; the intervals go into ``comparisons`` as ``bootstrap_low`` / ``bootstrap_high``.
    """
    from yolox.study.resample import match_run, percentile_interval, two_level_bootstrap

    start = time.perf_counter()
    needed = {(entry["variant"], seed) for entry in comparisons for seed in entry["seeds"]}
    needed |= {(plan.baseline, seed) for entry in comparisons for seed in entry["seeds"]}
    if replicates <= 0 or not needed:
        return {"replicates": 0, "note": "off" if replicates <= 0 else "no paired runs"}
    annotation_files = set()
    detections = {}
    for name, seed in sorted(needed):
        path = study_dir / name / f"seed{seed}" / str(runs[name][seed].get("detections") or "detections.npz")
        if not path.is_file():
            return {"replicates": 0, "note": f"{name}/seed{seed} kept no detections ({path.name})"}
        try:
            with np.load(path) as stored:
                detections[name, seed] = stored["results"]
                annotation_files.add(str(stored["annotations"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            return {"replicates": 0, "note": f"{path} is not a detections file ({type(err).__name__}: {err})"}
        if detections[name, seed].ndim != 2 or detections[name, seed].shape[1] != 7:
            return {"replicates": 0, "note": f"{path}: results of shape {detections[name, seed].shape}, expected "
                                             "(N, 7) rows of image, x, y, w, h, score, class"}
    if len(annotation_files) != 1 or not Path(next(iter(annotation_files))).is_file():
        return {"replicates": 0, "note": f"the runs' annotation file is not one readable file: {sorted(annotation_files)}"}
    annotations = next(iter(annotation_files))
    from yolox.data.datasets.coco import build_coco

    coco_gt = build_coco(load_json_file(Path(annotations), "the runs' ground truth, needed to bootstrap"))
    matches = {key: match_run(coco_gt, results) for key, results in detections.items()}
    image_count = len(coco_gt.getImgIds())
    for (name, seed), run_matches in matches.items():
        recomputed = float(run_matches.average_precision(np.ones((1, image_count)))[0])
        recorded = runs[name][seed]["figures"].get(PRIMARY)
        if recorded is None or abs(recomputed - recorded) > 1e-6:
            return {"replicates": 0, "note": f"{name}/seed{seed}: its detections give AP50:95 {recomputed:.6f}, "
                                             f"the run recorded {recorded}; not bootstrapped"}
    groups: dict[tuple[int, ...], list[dict]] = {}
    for entry in comparisons:
        if len(entry["seeds"]) >= 2:
            groups.setdefault(tuple(entry["seeds"]), []).append(entry)
    for seeds, entries in groups.items():
        replicated = two_level_bootstrap(lambda name, seed, weights: matches[name, seed].average_precision(weights),
                                         [plan.baseline, *(entry["variant"] for entry in entries)], plan.baseline,
                                         list(seeds), image_count, replicates)
        for entry in entries:
            entry["bootstrap_low"], entry["bootstrap_high"] = percentile_interval(replicated[entry["variant"]],
                                                                                  1.0 - entry["alpha"])
    return {"replicates": replicates, "images": image_count, "annotations": annotations,
            "seconds": round(time.perf_counter() - start, 2)}


def build_report(study_dir: Path, costs: dict[str, dict[str, float]] | None = None,
                 effect_points: float | None = None, log_look: bool = True, bootstrap: int = 1000) -> StudyReport:
    """Aggregate what ``study_dir`` recorded; ``costs`` replaces the recorded params/latency (tests).

    Reads only the study's own files (never an exp file): the params, GFLOPs and latency come from the
    record the study command made (``study_variants.json``).
    ``effect_points`` (AP points) asks for the seeds each comparison needs to find that effect; ``log_look``
    appends this report to ``looks.json``; ``bootstrap`` replicates of the two-level bootstrap (0: off).
    """
    study_dir = Path(study_dir)
    plan = load_plan(study_dir)
    decisions = load_decisions(study_dir)
    recorded = read_runs(plan, study_dir, stopped_variants(decisions))
    runs, failures = recorded.runs, recorded.failures
    if costs is None:
        variants = read_variants(study_dir)
        costs, cost_note = costs_of(variants or {}), measurement_note(variants)
    else:
        cost_note = "Params, GFLOPs and latency: given to the report."
    effect = None if effect_points is None else effect_points / 100.0
    primary = {name: {seed: entry["figures"].get(PRIMARY, float("nan")) for seed, entry in by_seed.items()}
               for name, by_seed in runs.items()}
    comparisons = [row.to_dict() for row in compare_to_baseline(paired_values(plan, primary), plan.correction, ALPHA,
                                                                plan.margin, effect)]
    imputed = compare_to_baseline(paired_values(plan, _worst_of_seed_imputed(plan, runs, failures)), plan.correction,
                                  ALPHA, plan.margin)
    sensitivity = [row.to_dict() for row in imputed] if any(failures.values()) else []
    secondary = {}
    for variant in plan.variants:
        if variant.name == plan.baseline:
            continue
        differences = {}
        for metric in SECONDARY:
            base = runs[plan.baseline]
            differences[metric] = [entry["figures"][metric] - base[seed]["figures"][metric]
                                   for seed, entry in sorted(runs[variant.name].items())
                                   if seed in base and metric in entry["figures"] and metric in base[seed]["figures"]]
        secondary[variant.name] = differences
    flat = {f"{name}/{metric}": values for name, by_metric in secondary.items() for metric, values in by_metric.items()}
    adjusted = benjamini_hochberg_intervals(flat)
    secondary_table = {name: {metric: adjusted[f"{name}/{metric}"] for metric in SECONDARY} for name in secondary}
    for entry in comparisons:
        entry["bootstrap_low"] = entry["bootstrap_high"] = None
    resampling = bootstrap_comparisons(study_dir, plan, runs, comparisons, bootstrap)
    look = build_looks(study_dir, plan, comparisons) if log_look else {"seeds_added_after_a_look": False}
    for entry in comparisons:
        entry["verdict_words"] = verdict_words(entry["verdict"], 100 * plan.margin)
        entry["exploratory"] = bool(look["seeds_added_after_a_look"])
    for entry in sensitivity:
        entry["verdict_words"] = verdict_words(entry["verdict"], 100 * plan.margin)
    report = StudyReport(plan, runs, failures, _variant_rows(plan, runs, failures, costs), comparisons, sensitivity,
                         secondary_table, recorded.missing, look, resampling, effect, recorded.curves, recorded.corrupt,
                         recorded.bad_metrics, cost_note, paired_curves(recorded.curves, plan.baseline), decisions,
                         compute_saved(plan, study_dir, decisions), study_dir)
    report.markdown = render_markdown(report)
    return report


def _missing_note(run: Run, halted_by: dict | None = None) -> str:
    if halted_by is not None:
        return (f"{run.label} (stopped by halving at rung {halted_by['rung']}, epoch {halted_by['epoch']}; "
                "--no-halving continues it)")
    if (run.run_dir / LATEST_CKPT).is_file():
        return f"{run.label} (running, or interrupted: the same study command continues it)"
    return f"{run.label} (not run yet)"


def _pct(value: float | None, pattern: str = "{:.2f}") -> str:
    """A fraction printed in % (or AP points, for a difference)."""
    return "-" if value is None else pattern.format(100.0 * value)


def _fmt_mean_std(entry: dict[str, float | None]) -> str:
    if entry.get("mean") is None:
        return "-"
    if entry.get("std") is None:
        return _pct(entry["mean"])
    return f"{_pct(entry['mean'])} +- {_pct(entry['std'])}"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"[{_pct(low, '{:+.2f}')}, {_pct(high, '{:+.2f}')}]"


def _fmt_p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _estimand_line(plan: StudyPlan) -> str:
    if plan.select == "best":
        return ("Compared: AP50:95 of each run's **best** checkpoint, *selected on the scored set* (optimistic, and "
                "more so for a noisier variant; `best - last` below shows by how much).")
    return "Compared: AP50:95 of each run's **last** checkpoint (the final EMA weights of the schedule)."


def _design_line(plan: StudyPlan, study_dir: Path) -> str:
    line = f"Design: {plan.design.describe()}."
    init_record = plan.design.init_dir(study_dir) / RUN_FILE
    if plan.design.kind == "baseline" and init_record.is_file():
        try:
            start = read_run_record(init_record)
        except StudyFileError as err:
            line += f" The init run's record cannot be read ({err})."
        else:
            if start.get("status") == "done":
                line += f" The shared start (the init run's last checkpoint) scores AP50:95 {_pct(start['ap50_95'])}%."
    if plan.design.kind != "scratch":
        line += (" What the shared start bought shows in the noise table below: the correlation of each variant's AP "
                 "with the baseline's across seeds and the sd of the paired differences.")
    return line


def _verdict_cell(entry: dict) -> str:
    words = entry["verdict_words"]
    if entry.get("exploratory") and entry["verdict"] in DECISIVE_VERDICTS:
        words += f", {EXPLORATORY_AFTER_LOOK}"
    return words


def render_markdown(report: StudyReport) -> str:
    """The report as Markdown tables (what ``study.md`` holds and the command prints)."""
    plan = report.plan
    total = len(plan.variants) * len(plan.seeds)
    failed = sum(len(by_seed) for by_seed in report.failures.values())
    done = total - len(report.missing) - failed - len(report.corrupt)
    overrides = " ".join(plan.overrides) or "(none)"
    margin = f"margin +-{100 * plan.margin:g} AP points" if plan.margin > 0 else "no margin (--margin 0)"
    lines = [f"# Study of {plan.exp_name}", "",
             f"exp `{plan.exp}`, batch {plan.batch_size}{', fp16' if plan.fp16 else ''}, overrides `{overrides}`; "
             f"seeds {', '.join(map(str, plan.seeds))}; baseline `{plan.baseline}`; {done}/{total} runs finished, "
             f"{failed} failed.", "", _design_line(plan, report.study_dir), "", _estimand_line(plan), ""]
    has_gpu = any(row.get("gpu_ms") is not None for row in report.variants)
    headers = ["variant", "seeds", "failed", *(f"{column} %" for column in AP_COLUMNS), "best - last (AP points)",
               "params", "GFLOPs", "CPU ms", "CPU overhead"]
    if has_gpu:
        headers += ["GPU ms", "GPU overhead"]
    headers.append("train time")
    table = []
    for row in report.variants:
        cells = [row["variant"], len(row["seeds"]), len(row["failed"]), *(_fmt_mean_std(row[column]) for column in AP_COLUMNS),
                 _fmt_mean_std(row["best_minus_last"]), _fmt(row["params"], "{:,}"), _fmt(row["gflops"], "{:.3f}"),
                 _fmt(row["cpu_ms"], "{:.1f}"), _fmt(row["cpu_ms_overhead"], "{:+.1%}")]
        if has_gpu:
            cells += [_fmt(row["gpu_ms"], "{:.2f}"), _fmt(row["gpu_ms_overhead"], "{:+.1%}")]
        cells.append(_fmt_duration(row["train_seconds"]))
        table.append(cells)
    lines += ["AP in % (mean +- sd over seeds); best - last: the best checkpoint's AP50:95 minus the last one's; latency: "
              "model forward, batch 1 at the test size, median of interleaved rounds; train time: mean wall time of a run.",
              "", tabulate(table, headers, tablefmt="github", disable_numparse=True), "", report.cost_note, ""]
    correction = CORRECTION_NAMES[plan.correction]
    tested = sum(entry["p"] is not None for entry in report.comparisons)
    resampling = report.bootstrap
    if resampling.get("replicates"):
        bootstrap_note = (f"bootstrap: two-level (seeds and the {resampling['images']} validation images) percentile "
                          f"interval at the same level, {resampling['replicates']} replicates ({resampling['seconds']:.1f} s)")
    else:
        bootstrap_note = f"bootstrap: not computed ({resampling.get('note')})"
    lines += [f"AP50:95 against `{plan.baseline}`, paired by seed, differences in AP points. Correction: **{correction}** "
              f"over the {tested} tested comparisons (family error rate {ALPHA:g}); {margin}. Each t-interval is the paired "
              "t-interval at its comparison's corrected level (1 - alpha shown); p: paired t test, raw and adjusted; "
              f"sign-flip: exact permutation p (smallest possible with these seeds in brackets); {bootstrap_note}.", ""]
    rows = []
    for entry in report.comparisons:
        level = "-" if entry["ci_low"] is None else f"{100 * (1 - entry['alpha']):.1f}%"
        flip = "-" if entry["sign_flip_p"] is None else f"{_fmt_p(entry['sign_flip_p'])} (>= {_fmt_p(entry['sign_flip_min_p'])})"
        rows.append([entry["variant"], len(entry["seeds"]),
                     ", ".join(_pct(value, "{:+.2f}") for value in entry["differences"]) or "-",
                     _pct(entry["mean"], "{:+.2f}") if entry["seeds"] else "-", _interval(entry["ci_low"], entry["ci_high"]),
                     _interval(entry["bootstrap_low"], entry["bootstrap_high"]), level, _fmt_p(entry["p"]),
                     _fmt_p(entry["p_adjusted"]), flip, _verdict_cell(entry)])
    lines += [tabulate(rows, ["variant", "pairs", "per-seed differences", "mean", "t-interval", "bootstrap", "level", "p",
                              "p adjusted", "sign-flip p", "verdict"], tablefmt="github", disable_numparse=True), ""]
    if plan.margin > 0:
        equivalence = [[entry["variant"], _interval(entry["equivalence_low"], entry["equivalence_high"]),
                        _fmt_p(entry["tost_p"])] for entry in report.comparisons]
        lines += [f"Equivalence within +-{100 * plan.margin:g} AP points (two one-sided tests: the 1 - 2 alpha interval "
                  "inside the margin):", "",
                  tabulate(equivalence, ["variant", "TOST interval", "TOST p"], tablefmt="github", disable_numparse=True), ""]
    power_rows = []
    for entry in report.comparisons:
        row = [entry["variant"], _pct(entry["sd"]), _fmt(entry["correlation"], "{:+.2f}"), _pct(entry["mde"])]
        if report.effect is not None:
            row.append(_fmt(entry["seeds_needed"], "{}"))
        power_rows.append(row)
    power_headers = ["variant", "sd of differences", "corr. with baseline", "MDE (80% power)"]
    if report.effect is not None:
        power_headers.append(f"seeds for {100 * report.effect:g} AP points")
    baseline_spread = next(row["AP50:95"]["std"] for row in report.variants if row["variant"] == plan.baseline)
    lines += [f"Noise and power (AP points): the sd of the per-seed differences is the noise a comparison sees (the "
              f"baseline's own seed sd is {_pct(baseline_spread)}); the correlation across seeds is what the pairing "
              "bought (sd of differences = sqrt(sd_v^2 + sd_b^2 - 2 r sd_v sd_b)); MDE: the true difference these seeds "
              "find 80% of the time at the comparison's level (noncentral t).", "",
              tabulate(power_rows, power_headers, tablefmt="github", disable_numparse=True), ""]
    lines += halving_lines(plan, report.halving, report.compute_saved, report.runs)
    lines += curve_lines(report.paired_curves, plan.baseline)
    if report.sensitivity:
        sensitivity = [[entry["variant"], len(entry["seeds"]), _pct(entry["mean"], "{:+.2f}") if entry["seeds"] else "-",
                        _interval(entry["ci_low"], entry["ci_high"]), entry["verdict_words"]] for entry in report.sensitivity]
        failure_notes = [f"{name}/seed{seed} ({info['stage']}, iteration {info['iteration']}: {info['reason']})"
                         for name, by_seed in report.failures.items() for seed, info in sorted(by_seed.items())]
        lines += ["Failed runs: " + "; ".join(failure_notes) + ".", "",
                  "Sensitivity: the same comparison with each failed run scored as the worst AP50:95 of its seed's "
                  "finished runs (the primary analysis above uses complete pairs only):", "",
                  tabulate(sensitivity, ["variant", "pairs", "mean", "interval", "verdict"], tablefmt="github",
                           disable_numparse=True), ""]
    secondary_rows = []
    for name, by_metric in report.secondary.items():
        cells = [name]
        for metric in SECONDARY:
            entry = by_metric[metric]
            if entry.get("ci_low") is None:
                cells.append(_pct(entry["mean"], "{:+.2f}") if entry["mean"] is not None else "-")
            else:
                mark = " *" if entry["discovery"] else ""
                cells.append(f"{_pct(entry['mean'], '{:+.2f}')} {_interval(entry['ci_low'], entry['ci_high'])}{mark}")
        secondary_rows.append(cells)
    lines += ["Secondary metrics, exploratory (AP points, mean difference and t-interval at the Benjamini-Hochberg "
              "false-coverage level over all of them; * = a BH discovery at 0.05):", "",
              tabulate(secondary_rows, ["variant", *SECONDARY], tablefmt="github", disable_numparse=True), ""]
    look = report.look
    if look.get("number"):
        note = (f"Look {look['number']} at this study (looks.json)."
                + (f" Seeds were added after an earlier look: verdicts are {EXPLORATORY_AFTER_LOOK}."
                   if look["seeds_added_after_a_look"] else ""))
        lines.append(note)
    if report.missing:
        lines += ["", "Missing runs (reported without them): " + "; ".join(report.missing) + "."]
    if report.corrupt:
        lines += ["", "Corrupt runs (not counted; the study command trains them again): "
                  + "; ".join(report.corrupt)]
    if report.bad_metrics:
        lines += ["", "Bad lines in metrics files (skipped in the curves): " + "; ".join(report.bad_metrics) + "."]
    return "\n".join(lines) + "\n"


def write_report(report: StudyReport, study_dir: Path) -> list[Path]:
    """Write study.md, study.csv, study.json and (with matplotlib) study.png; return the paths written.

    Each file is written to a temporary beside it, and they are renamed into place only once all of them
    were written: a report that fails midway (a full disk) leaves the previous report whole.
    """
    study_dir = Path(study_dir)
    paths = [study_dir / "study.md", study_dir / "study.csv", study_dir / "study.json"]
    plot_path = study_dir / "study.png"
    with contextlib.ExitStack() as renames:
        markdown_file, csv_file, json_file = (renames.enter_context(atomic_path(path)) for path in paths)
        markdown = report.markdown
        if importlib.util.find_spec("matplotlib") is not None:
            write_plot(report, renames.enter_context(atomic_path(plot_path)))
            markdown += ("\nPlots: study.png (AP50:95 against CPU latency; AP50:95 by epoch, mean and min-max over "
                         "seeds; the paired differences with their intervals; the paired difference by epoch with its band).\n")
            paths.append(plot_path)
        else:
            markdown += f"\n{PLOT_HINT}\n"
        markdown_file.write_text(markdown, encoding="utf-8")
        _write_csv(report, csv_file)
        json_file.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths


CSV_COMPARISON_KEYS = ("mean", "sd", "correlation", "ci_low", "ci_high", "bootstrap_low", "bootstrap_high", "alpha",
                       "p", "p_adjusted", "sign_flip_p",
                       "sign_flip_min_p", "equivalence_low", "equivalence_high", "tost_p", "mde", "seeds_needed",
                       "verdict")


def _write_csv(report: StudyReport, path: Path) -> None:
    """One row per variant: its figures (AP as fractions) and its comparison with the baseline."""
    comparisons = {entry["variant"]: entry for entry in report.comparisons}
    sensitivity = {entry["variant"]: entry for entry in report.sensitivity}
    fields = ["variant", "seeds", "failed"]
    for column in AP_COLUMNS:
        fields += [f"{column}_mean", f"{column}_std"]
    fields += ["best_minus_last_mean", "params", "gflops", "cpu_ms", "cpu_ms_overhead", "gpu_ms", "gpu_ms_overhead",
               "train_seconds", "select", "correction", *(f"diff_{key}" for key in CSV_COMPARISON_KEYS),
               "exploratory", "sensitivity_diff_mean", "sensitivity_verdict"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in report.variants:
            line: dict[str, Any] = {"variant": row["variant"], "seeds": " ".join(map(str, row["seeds"])),
                                    "failed": " ".join(map(str, row["failed"])), "select": report.plan.select,
                                    "correction": report.plan.correction,
                                    "best_minus_last_mean": row["best_minus_last"]["mean"]}
            for column in AP_COLUMNS:
                line[f"{column}_mean"], line[f"{column}_std"] = row[column]["mean"], row[column]["std"]
            for key in ("params", "gflops", "cpu_ms", "cpu_ms_overhead", "gpu_ms", "gpu_ms_overhead", "train_seconds"):
                line[key] = row.get(key)
            comparison = comparisons.get(row["variant"])
            if comparison is None:
                line["diff_verdict"] = "baseline"
            else:
                line.update({f"diff_{key}": comparison[key] for key in CSV_COMPARISON_KEYS})
                line["exploratory"] = comparison["exploratory"]
            if row["variant"] in sensitivity:
                line["sensitivity_diff_mean"] = sensitivity[row["variant"]]["mean"]
                line["sensitivity_verdict"] = sensitivity[row["variant"]]["verdict"]
            writer.writerow(line)


def write_plot(report: StudyReport, path: Path) -> None:
    """AP vs latency, AP by epoch, and the paired differences with intervals, as a PNG (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cost_axis, curve_axis, diff_axis, paired_axis) = plt.subplots(1, 4, figsize=(21, 4.4))
    for row in report.variants:
        ap = row["AP50:95"]
        if ap["mean"] is None or row["cpu_ms"] is None:
            continue
        cost_axis.errorbar(row["cpu_ms"], 100 * ap["mean"], yerr=100 * (ap["std"] or 0.0), fmt="o", capsize=4)
        cost_axis.annotate(row["variant"], (row["cpu_ms"], 100 * ap["mean"]), textcoords="offset points", xytext=(6, 4))
    cost_axis.set_xlabel("CPU latency, batch 1 (ms)")
    cost_axis.set_ylabel("AP50:95 (%), mean +- sd over seeds")
    cost_axis.set_title("accuracy against cost")
    colors = {name: f"C{index}" for index, name in enumerate(report.curves)}  # one colour per variant in both panels
    for name, by_seed in report.curves.items():
        epochs = sorted({epoch for curve in by_seed.values() for epoch in curve})
        if not epochs:
            continue
        values = [[100 * curve[epoch] for curve in by_seed.values() if epoch in curve] for epoch in epochs]
        line = curve_axis.plot(epochs, [float(np.mean(v)) for v in values], marker="o", label=name, color=colors[name])[0]
        curve_axis.fill_between(epochs, [min(v) for v in values], [max(v) for v in values],
                                color=line.get_color(), alpha=0.2)
    curve_axis.set_xlabel("epoch")
    curve_axis.set_ylabel("AP50:95 (%)")
    curve_axis.set_title("validation AP during training (band: min-max over seeds)")
    if curve_axis.lines:
        curve_axis.legend()
    for position, entry in enumerate(report.comparisons):
        diff_axis.scatter([100 * value for value in entry["differences"]], [position] * len(entry["differences"]),
                          color="grey", s=14, zorder=3)
        if entry["ci_low"] is not None:
            diff_axis.plot([100 * entry["ci_low"], 100 * entry["ci_high"]], [position, position], color="black", lw=2)
            diff_axis.plot([100 * entry["mean"]], [position], "o", color="black")
    if report.plan.margin > 0:
        for bound in (-report.plan.margin, report.plan.margin):
            diff_axis.axvline(100 * bound, color="tab:blue", ls=":", lw=1)
    diff_axis.axvline(0.0, color="tab:red", lw=1)
    diff_axis.set_yticks(range(len(report.comparisons)), [entry["variant"] for entry in report.comparisons])
    diff_axis.set_xlabel(f"AP50:95 difference to {report.plan.baseline} (AP points)")
    diff_axis.set_title(f"paired differences and {CORRECTION_NAMES[report.plan.correction]} intervals")
    plot_paired_curves(paired_axis, report.paired_curves, report.plan.baseline, report.plan.margin, colors)
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")  # the path may be a temporary without the .png suffix
    plt.close(figure)
