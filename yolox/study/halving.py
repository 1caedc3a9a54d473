"""Successive halving over a study's variants: stop a variant early when it clearly hurts.

The rule is fixed in ``study_plan.json`` before the first run: at each rung (a fraction of the schedule) every
surviving run trains up to that epoch and is evaluated there (the trainer's own evaluation), and a variant
stops when its paired interval against the baseline at that rung, at the level of the study's correction over
the variants still compared, lies entirely below ``-margin``. The baseline never stops. The decisions are kept
in ``halving.json``; a stopped variant keeps its runs (``latest_ckpt.pth`` and curves) and ``--no-halving``
continues them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolox.utils.errors import UserError
from yolox.utils.files import write_json_atomically

if TYPE_CHECKING:
    from yolox.study.plan import Run, StudyPlan

HALVING_FILE = "halving.json"
HALVING_ADVICE = "it records the halving decisions: delete it to decide the rungs again from the runs' evaluations"


@dataclass(frozen=True)
class HalvingRule:
    """Rungs as fractions of the schedule and the epochs they fall on (``total_epochs`` long); empty = off."""

    fractions: tuple[float, ...] = ()
    epochs: tuple[int, ...] = ()
    total_epochs: int = 0

    @property
    def active(self) -> bool:
        """Whether the study halves at all."""
        return bool(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, as ``study_plan.json`` stores it."""
        return {"fractions": list(self.fractions), "epochs": list(self.epochs), "total_epochs": self.total_epochs}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HalvingRule:
        """The rule stored in a plan (none: no halving)."""
        data = data or {}
        return cls(tuple(float(f) for f in data.get("fractions", ())), tuple(int(e) for e in data.get("epochs", ())),
                   int(data.get("total_epochs", 0)))

    def describe(self, baseline: str, correction: str, margin_points: float) -> str:
        """The stopping rule in words, for the report."""
        rungs = ", ".join(f"{fraction:.0%} (epoch {epoch})" for fraction, epoch in zip(self.fractions, self.epochs))
        bound = f"-{margin_points:g} AP points (the margin)" if margin_points > 0 else "0 (no margin)"
        return (f"Successive halving, fixed in study_plan.json before the first run: at {rungs} of the "
                f"{self.total_epochs}-epoch schedule every surviving run is evaluated, and a variant stops when its "
                f"paired interval against `{baseline}` at that rung ({correction} over the variants still compared) "
                f"lies entirely below {bound}; `{baseline}` never stops.")


def build_rule(text: str | None, total_epochs: int) -> HalvingRule:
    """``--halving 0.2,0.5`` resolved against a ``total_epochs`` schedule; None or empty: no halving."""
    if not text:
        return HalvingRule()
    try:
        fractions = tuple(float(piece) for piece in text.split(","))
    except ValueError:
        raise UserError(f"--halving {text!r}: give fractions of the schedule, e.g. 0.2,0.5") from None
    if any(not 0 < fraction < 1 for fraction in fractions) or list(fractions) != sorted(set(fractions)):
        raise UserError(f"--halving {text!r}: give increasing fractions between 0 and 1, e.g. 0.2,0.5")
    epochs = tuple(max(1, round(fraction * total_epochs)) for fraction in fractions)
    if len(set(epochs)) != len(epochs) or epochs[-1] >= total_epochs:
        raise UserError(f"--halving {text!r} on a {total_epochs}-epoch schedule falls on epochs "
                        f"{', '.join(map(str, epochs))}: each rung needs its own epoch before the last; use fewer "
                        "or coarser rungs, or a longer schedule")
    return HalvingRule(fractions, epochs, int(total_epochs))


def load_decisions(study_dir: Path) -> list[dict[str, Any]]:
    """The rung decisions taken so far (``halving.json``, validated), first rung first."""
    from yolox.study.records import Fields, StudyFileError, is_int, is_list_of, is_number, is_text, load_json_file

    path = Path(study_dir) / HALVING_FILE
    if not path.is_file():
        return []
    data = load_json_file(path, HALVING_ADVICE)
    if not isinstance(data, list):
        raise StudyFileError(f"{path}: should be a list of rung decisions, found {type(data).__name__}; {HALVING_ADVICE}")
    for index, item in enumerate(data):
        fields = Fields(item, path, HALVING_ADVICE, f"[{index}].")
        for key in ("rung", "epoch"):
            fields.get(key, lambda value: is_int(value) and value >= 1, "a whole number >= 1")
        fields.get("fraction", lambda value: is_number(value) and 0 < value < 1, "a fraction in (0, 1)")
        fields.get("stopped", is_list_of(is_text), "a list of variant names")
        fields.get("comparisons", lambda value: isinstance(value, dict), "an object of variant -> comparison")
    return data


def stopped_variants(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stopped variant with the decision (rung) that stopped it."""
    return {name: decision for decision in decisions for name in decision["stopped"]}


def rung_values(plan: StudyPlan, study_dir: Path, epoch: int) -> dict[str, dict[int, float]]:
    """AP50:95 (fraction) at ``epoch`` by variant and seed, from each run's evaluations in metrics.jsonl."""
    from yolox.study.curves import epoch_curve

    values: dict[str, dict[int, float]] = {variant.name: {} for variant in plan.variants}
    for run in plan.runs(Path(study_dir)):
        curve, _ = epoch_curve(run.run_dir)
        if epoch in curve:
            values[run.variant.name][run.seed] = curve[epoch]
    return values


def decide_rung(plan: StudyPlan, study_dir: Path, rung: int, survivors: list[str]) -> dict[str, Any]:
    """The decision at rung ``rung`` (0-based) over the surviving variants, from their evaluations at its epoch."""
    from yolox.study.stats import compare_to_baseline

    epoch = plan.halving.epochs[rung]
    values = rung_values(plan, study_dir, epoch)
    base = values[plan.baseline]
    pairs = {name: {seed: (value, base[seed]) for seed, value in values[name].items() if seed in base}
             for name in survivors if name != plan.baseline}
    comparisons = {row.variant: row for row in compare_to_baseline(pairs, plan.correction, margin=plan.margin)}
    entries, stopped = {}, []
    for name, row in comparisons.items():
        stops = bool(row.ci_high is not None and row.ci_high < -plan.margin)
        entry = row.to_dict()
        entries[name] = {"seeds": entry["seeds"], **{key: None if entry[key] is None else float(entry[key])
                                                     for key in ("mean", "ci_low", "ci_high", "alpha")},
                         "stopped": stops}
        if stops:
            stopped.append(name)
    return {"rung": rung + 1, "epoch": epoch, "fraction": plan.halving.fractions[rung], "comparisons": entries,
            "stopped": stopped}


def record_decision(study_dir: Path, decision: dict[str, Any]) -> list[dict[str, Any]]:
    """Append a rung's decision to ``halving.json`` (once per rung) and return all decisions."""
    decisions = [entry for entry in load_decisions(study_dir) if entry["rung"] != decision["rung"]]
    decisions = sorted([*decisions, decision], key=lambda entry: entry["rung"])
    write_json_atomically(Path(study_dir) / HALVING_FILE, decisions)
    return decisions


def run_reached(run: Run, epoch: int) -> bool:
    """Whether ``run`` was evaluated at ``epoch``, finished, or failed (a failed run takes no part)."""
    from yolox.study.curves import epoch_curve
    from yolox.study.runner import run_status

    return run_status(run) in ("done", "failed") or epoch in epoch_curve(run.run_dir)[0]


def compute_saved(plan: StudyPlan, study_dir: Path, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """Training not spent on the stopped variants: per run, its remaining iterations x its measured s/iteration."""
    from yolox.study.records import read_sessions
    from yolox.study.runner import SESSIONS_FILE, run_status, training_seconds

    stopped = stopped_variants(decisions)
    saved_seconds, runs, spent_seconds = 0.0, 0, 0.0
    for run in plan.runs(Path(study_dir)):
        decision = stopped.get(run.variant.name)
        if decision is None or run_status(run) in ("done", "failed"):
            continue
        iteration = _iteration_at(run.run_dir, decision["epoch"])
        sessions_path = run.run_dir / SESSIONS_FILE
        if iteration is None or not sessions_path.is_file():
            continue
        seconds = training_seconds(read_sessions(sessions_path))
        per_iteration = seconds / iteration
        remaining = (plan.halving.total_epochs - decision["epoch"]) * iteration / decision["epoch"]
        saved_seconds += remaining * per_iteration
        spent_seconds += seconds
        runs += 1
    return {"runs": runs, "saved_hours": saved_seconds / 3600.0, "spent_hours": spent_seconds / 3600.0}


def _iteration_at(run_dir: Path, epoch: int) -> int | None:
    """The completed iterations that the evaluation at ``epoch`` recorded."""
    from yolox.core.metrics_log import METRICS_FILE, read_metrics

    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    found = [int(record["iteration"]) for record in read_metrics(path)
             if record.get("kind") == "eval" and record.get("epoch") == epoch and record.get("iteration")]
    return found[-1] if found else None


def halving_lines(plan: StudyPlan, decisions: list[dict[str, Any]], saved: dict[str, Any],
                  finished: dict[str, dict]) -> list[str]:
    """The report's halving section: the rule, each rung's decisions, what stopped and the compute saved."""
    if not plan.halving.active:
        return []
    margin_points = 100 * plan.margin
    lines = [plan.halving.describe(plan.baseline, plan.correction, margin_points), ""]
    if not decisions:
        return [*lines, "No rung decided yet.", ""]
    rows = []
    for decision in decisions:
        for name, entry in decision["comparisons"].items():
            interval = "-" if entry["ci_low"] is None else f"[{100 * entry['ci_low']:+.2f}, {100 * entry['ci_high']:+.2f}]"
            mean = "-" if entry["mean"] is None or math.isnan(entry["mean"]) else f"{100 * entry['mean']:+.2f}"
            rows.append(f"| {decision['rung']} | {decision['epoch']} ({decision['fraction']:.0%}) | {name} | "
                        f"{len(entry['seeds'])} | {mean} | {interval} | {'stopped' if entry['stopped'] else 'goes on'} |")
    lines += ["| rung | epoch (budget) | variant | pairs | mean (AP points) | interval | decision |",
              "|---|---|---|---|---|---|---|", *rows, ""]
    stopped = stopped_variants(decisions)
    for name, decision in stopped.items():
        continued = " (continued since with --no-halving)" if finished.get(name) else ""
        lines.append(f"- `{name}`: *stopped at rung {decision['rung']} (budget {decision['fraction']:.0%}, epoch "
                     f"{decision['epoch']} of {plan.halving.total_epochs}): hurts by more than the margin at that "
                     f"budget*{continued}.")
    if stopped:
        lines += ["", f"Compute saved: {saved['runs']} stopped runs did not train {saved['saved_hours']:.3f} hours "
                      f"(their remaining iterations at each run's measured time per iteration; they had trained "
                      f"{saved['spent_hours']:.3f} hours). `--no-halving` continues them.", ""]
    else:
        lines += ["No variant stopped.", ""]
    return lines
