"""The study report: per-variant figures over seeds, paired differences against the baseline, verdicts.

Written as ``study.md`` (also printed), ``study.csv``, ``study.json`` and, with matplotlib, ``study.png``.
AP figures are in percent (COCO AP x 100); differences are in AP points.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from yolox.core.metrics_log import METRICS_FILE, read_metrics
from yolox.study.plan import Run, StudyPlan, load_plan
from yolox.study.runner import RUN_FILE, exp_flags
from yolox.study.stats import compare_to_baseline, sample_std, verdict_words

# Report column -> key in eval_results.json's COCO "stats" (AP figures in 0..1; -1 means no such objects).
AP_COLUMNS = {"AP50:95": "AP50:95", "AP50": "AP50", "AP75": "AP75", "APs": "AP_small", "APm": "AP_medium",
              "APl": "AP_large"}
PLOT_HINT = "study.png needs matplotlib: pip install -e \".[plot]\" and run tools/study.py report STUDY_DIR"


def run_figures(run_record: dict) -> dict[str, float]:
    """A finished run's AP figures in percent; a COCO -1 (no objects of that size) is left out."""
    stats = run_record.get("stats") or {}
    figures = {}
    for column, key in AP_COLUMNS.items():
        value = stats.get(key)
        if value is None and column == "AP50:95":
            value = run_record.get("ap50_95")
        if value is None and column == "AP50":
            value = run_record.get("ap50")
        if value is not None and value >= 0:
            figures[column] = 100.0 * float(value)
    return figures


def epoch_curve(run_dir: Path) -> dict[int, float]:
    """AP50:95 (percent) by epoch from a run's metrics.jsonl; a repeated epoch (after a resume) keeps the last."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return {}
    return {int(record["epoch"]): 100.0 * float(record["ap50_95"]) for record in read_metrics(path)
            if record.get("kind") == "eval" and record.get("ap50_95") is not None}


@dataclass
class StudyReport:
    """Everything the report shows, as plain data."""

    plan: StudyPlan
    runs: dict[str, dict[int, dict]]
    variants: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    noise_floor: dict[str, Any]
    missing: list[str]
    curves: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    markdown: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``study.json``)."""
        return {"plan": self.plan.to_dict(), "runs": self.runs, "variants": self.variants,
                "comparisons": self.comparisons, "noise_floor": self.noise_floor, "missing": self.missing,
                "curves": {name: {str(seed): curve for seed, curve in by_seed.items()}
                           for name, by_seed in self.curves.items()}}


def measure_variant_costs(plan: StudyPlan, device: str, repeats: int = 30, warmup: int = 5) -> dict[str, dict[str, float]]:
    """Params, GFLOPs and eval latency (batch 1, test size, median ms) of each variant's model.

    The variants are timed in interleaved rounds, so a machine that slows down or speeds up during the
    measurement affects them all alike.
    """
    import time

    import torch

    from yolox.benchmarks.model import synthetic_images
    from yolox.benchmarks.report import Summary
    from yolox.cli.common import exp_from_args
    from yolox.utils.model_utils import get_model_stats

    costs: dict[str, dict[str, float]] = {}
    models = {}
    for variant in plan.variants:
        flags = exp_flags(plan)
        args = argparse.Namespace(exp_file=flags[1] if flags[0] == "-f" else None,
                                  name=flags[1] if flags[0] == "-n" else None, experiment_name=None,
                                  opts=[*plan.overrides, *variant.override_args()])
        exp = exp_from_args(args)
        model = exp.get_model().eval()
        stats = get_model_stats(model, tuple(exp.test_size))
        costs[variant.name] = {"params": int(stats["params"]), "gflops": float(stats["gflops"])}
        models[variant.name] = (model, tuple(exp.test_size))
    targets = ["cpu"] + ([device] if device.startswith("cuda") else [])
    for target in targets:
        samples: dict[str, list[float]] = {name: [] for name in models}
        placed = {name: (model.to(target), synthetic_images(1, size).to(target)) for name, (model, size) in models.items()}
        for round_index in range(warmup + repeats):
            for name, (model, images) in placed.items():
                start = time.perf_counter()
                with torch.inference_mode():
                    model(images)
                if target != "cpu":
                    torch.cuda.synchronize(target)
                if round_index >= warmup:
                    samples[name].append(time.perf_counter() - start)
        key = "cpu_ms" if target == "cpu" else "gpu_ms"
        for name, values in samples.items():
            costs[name][key] = 1000.0 * Summary.of(values).median
    return costs


def mean(values: list[float]) -> float:
    """Arithmetic mean (NaN for no values)."""
    return sum(values) / len(values) if values else float("nan")


def _mean_std(values: list[float]) -> dict[str, float | None]:
    spread = sample_std(values)
    return {"mean": mean(values) if values else None, "std": None if math.isnan(spread) else spread}


def build_report(study_dir: Path, device: str = "cpu", costs: dict[str, dict[str, float]] | None = None,
                 effect_points: float | None = None) -> StudyReport:
    """Aggregate the finished runs of ``study_dir``; ``costs`` replaces the measured params/latency (tests)."""
    plan = load_plan(study_dir)
    runs: dict[str, dict[int, dict]] = {variant.name: {} for variant in plan.variants}
    curves: dict[str, dict[int, dict[int, float]]] = {variant.name: {} for variant in plan.variants}
    missing = []
    for run in plan.runs(Path(study_dir)):
        record_path = run.run_dir / RUN_FILE
        if record_path.is_file() and json.loads(record_path.read_text()).get("status", "done") == "done":
            record = json.loads(record_path.read_text())
            runs[run.variant.name][run.seed] = {**record, "figures": run_figures(record)}
            curves[run.variant.name][run.seed] = epoch_curve(run.run_dir)
        else:
            missing.append(_missing_note(run))
    if costs is None:
        costs = measure_variant_costs(plan, device)
    baseline_cost = costs.get(plan.baseline, {})
    variants = []
    for variant in plan.variants:
        finished = runs[variant.name]
        row: dict[str, Any] = {"variant": variant.name, "seeds": sorted(finished)}
        for column in AP_COLUMNS:
            row[column] = _mean_std([entry["figures"][column] for entry in finished.values() if column in entry["figures"]])
        cost = costs.get(variant.name, {})
        row.update({key: cost.get(key) for key in ("params", "gflops", "cpu_ms", "gpu_ms")})
        for key in ("cpu_ms", "gpu_ms"):
            base = baseline_cost.get(key)
            row[f"{key}_overhead"] = cost[key] / base - 1.0 if cost.get(key) is not None and base else None
        row["train_seconds"] = mean([entry["train_seconds"] for entry in finished.values()]) if finished else None
        variants.append(row)
    baseline_runs = runs[plan.baseline]
    pairs = {variant.name: {seed: (entry["figures"]["AP50:95"], baseline_runs[seed]["figures"]["AP50:95"])
                            for seed, entry in runs[variant.name].items() if seed in baseline_runs}
             for variant in plan.variants if variant.name != plan.baseline}
    comparisons = [{"variant": result.variant, "seeds": result.seeds, "differences": result.differences,
                    "mean": result.mean, "ci_low": result.ci_low, "ci_high": result.ci_high,
                    "verdict": verdict_words(result.verdict, 0.0)}
                   for result in compare_to_baseline(pairs, correction="none")]
    base_values = [entry["figures"]["AP50:95"] for entry in baseline_runs.values()]
    noise_floor = {"variant": plan.baseline, "seeds": len(base_values), **_mean_std(base_values),
                   "min": min(base_values) if base_values else None, "max": max(base_values) if base_values else None}
    report = StudyReport(plan, runs, variants, comparisons, noise_floor, missing, curves)
    report.markdown = render_markdown(report)
    return report


def _missing_note(run: Run) -> str:
    if (run.run_dir / "latest_ckpt.pth").is_file():
        return f"{run.label} (running, or interrupted: the same study command continues it)"
    return f"{run.label} (not run yet)"


def _fmt_mean_std(entry: dict[str, float | None]) -> str:
    if entry.get("mean") is None:
        return "-"
    if entry.get("std") is None:
        return f"{entry['mean']:.2f}"
    return f"{entry['mean']:.2f} +- {entry['std']:.2f}"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def render_markdown(report: StudyReport) -> str:
    """The report as Markdown tables (what ``study.md`` holds and the command prints)."""
    plan = report.plan
    total = len(plan.variants) * len(plan.seeds)
    done = total - len(report.missing)
    overrides = " ".join(plan.overrides) or "(none)"
    lines = [f"# Study of {plan.exp_name}", "",
             f"exp `{plan.exp}`, batch {plan.batch_size}{', fp16' if plan.fp16 else ''}, overrides `{overrides}`; "
             f"seeds {', '.join(map(str, plan.seeds))}; baseline `{plan.baseline}`; {done}/{total} runs finished.", ""]
    has_gpu = any(row.get("gpu_ms") is not None for row in report.variants)
    headers = ["variant", "seeds", *AP_COLUMNS, "params", "GFLOPs", "CPU ms", "CPU overhead"]
    if has_gpu:
        headers += ["GPU ms", "GPU overhead"]
    headers.append("train time")
    table = []
    for row in report.variants:
        cells = [row["variant"], len(row["seeds"]), *(_fmt_mean_std(row[column]) for column in AP_COLUMNS),
                 _fmt(row["params"], "{:,}"), _fmt(row["gflops"], "{:.3f}"), _fmt(row["cpu_ms"], "{:.1f}"),
                 _fmt(row["cpu_ms_overhead"], "{:+.1%}")]
        if has_gpu:
            cells += [_fmt(row["gpu_ms"], "{:.2f}"), _fmt(row["gpu_ms_overhead"], "{:+.1%}")]
        cells.append(_fmt_duration(row["train_seconds"]))
        table.append(cells)
    lines += ["AP in % (mean +- std over seeds); latency: model forward, batch 1 at the test size, median of "
              "interleaved rounds; train time: mean wall time of a run.", "",
              tabulate(table, headers, tablefmt="github", disable_numparse=True), ""]
    comparison_rows = []
    for entry in report.comparisons:
        interval = ("-" if entry["ci_low"] is None
                    else f"[{entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]")
        comparison_rows.append([entry["variant"], len(entry["seeds"]),
                                ", ".join(f"{value:+.2f}" for value in entry["differences"]) or "-",
                                _fmt(entry["mean"] if entry["seeds"] else None, "{:+.2f}"), interval, entry["verdict"]])
    lines += [f"AP50:95 against `{plan.baseline}`, paired by seed (AP points; 95% t-interval of the mean difference):", "",
              tabulate(comparison_rows, ["variant", "pairs", "per-seed differences", "mean", "95% CI", "verdict"],
                       tablefmt="github", disable_numparse=True), ""]
    floor = report.noise_floor
    if floor["seeds"] >= 2:
        lines.append(f"Noise floor: `{plan.baseline}` alone scores AP50:95 {floor['mean']:.2f} +- {floor['std']:.2f} "
                     f"over {floor['seeds']} seeds (range {floor['min']:.2f} to {floor['max']:.2f}).")
    else:
        lines.append(f"Noise floor: needs at least two finished seeds of `{plan.baseline}`.")
    if report.missing:
        lines += ["", "Missing runs (reported without them): " + "; ".join(report.missing) + "."]
    return "\n".join(lines) + "\n"


def write_report(report: StudyReport, study_dir: Path) -> list[Path]:
    """Write study.md, study.csv, study.json and (with matplotlib) study.png; return the paths written."""
    study_dir = Path(study_dir)
    paths = [study_dir / "study.md", study_dir / "study.csv", study_dir / "study.json"]
    markdown = report.markdown
    plot_path = study_dir / "study.png"
    if not write_plot(report, plot_path):
        markdown += f"\n{PLOT_HINT}\n"
    else:
        markdown += "\nPlots: study.png (AP50:95 against CPU latency; AP50:95 by epoch, mean and min-max over seeds).\n"
        paths.append(plot_path)
    paths[0].write_text(markdown)
    _write_csv(report, paths[1])
    paths[2].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return paths


def _write_csv(report: StudyReport, path: Path) -> None:
    comparisons = {entry["variant"]: entry for entry in report.comparisons}
    fields = ["variant", "seeds"]
    for column in AP_COLUMNS:
        fields += [f"{column}_mean", f"{column}_std"]
    fields += ["params", "gflops", "cpu_ms", "cpu_ms_overhead", "gpu_ms", "gpu_ms_overhead", "train_seconds",
               "diff_mean", "diff_ci_low", "diff_ci_high", "verdict"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in report.variants:
            line = {"variant": row["variant"], "seeds": " ".join(map(str, row["seeds"]))}
            for column in AP_COLUMNS:
                line[f"{column}_mean"], line[f"{column}_std"] = row[column]["mean"], row[column]["std"]
            for key in ("params", "gflops", "cpu_ms", "cpu_ms_overhead", "gpu_ms", "gpu_ms_overhead", "train_seconds"):
                line[key] = row.get(key)
            comparison = comparisons.get(row["variant"])
            if comparison is not None:
                line.update(diff_mean=comparison["mean"] if comparison["seeds"] else None,
                            diff_ci_low=comparison["ci_low"], diff_ci_high=comparison["ci_high"],
                            verdict=comparison["verdict"])
            else:
                line["verdict"] = "baseline"
            writer.writerow(line)


def write_plot(report: StudyReport, path: Path) -> bool:
    """AP vs latency with error bars and AP by epoch (mean line, min-max band); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (cost_axis, curve_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in report.variants:
        ap = row["AP50:95"]
        if ap["mean"] is None or row["cpu_ms"] is None:
            continue
        cost_axis.errorbar(row["cpu_ms"], ap["mean"], yerr=ap["std"] or 0.0, fmt="o", capsize=4, label=row["variant"])
        cost_axis.annotate(row["variant"], (row["cpu_ms"], ap["mean"]), textcoords="offset points", xytext=(6, 4))
    cost_axis.set_xlabel("CPU latency, batch 1 (ms)")
    cost_axis.set_ylabel("AP50:95 (%), mean +- std over seeds")
    cost_axis.set_title("accuracy against cost")
    for name, by_seed in report.curves.items():
        epochs = sorted({epoch for curve in by_seed.values() for epoch in curve})
        if not epochs:
            continue
        values = [[curve[epoch] for curve in by_seed.values() if epoch in curve] for epoch in epochs]
        line = curve_axis.plot(epochs, [mean(v) for v in values], marker="o", label=name)[0]
        curve_axis.fill_between(epochs, [min(v) for v in values], [max(v) for v in values],
                                color=line.get_color(), alpha=0.2)
    curve_axis.set_xlabel("epoch")
    curve_axis.set_ylabel("AP50:95 (%)")
    curve_axis.set_title("validation AP during training (band: min-max over seeds)")
    if curve_axis.lines:
        curve_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True
