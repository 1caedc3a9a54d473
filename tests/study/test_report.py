"""The report's figures against hand computations and scipy on fixed run records: failures, looks, files."""

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from yolox.study.plan import StudyPlan, claim_study_dir, parse_variants
from yolox.study.report import LOOKS_FILE, build_report, write_report

# AP50:95 (fractions) by variant and seed; cam/seed2 is still running, se/seed1 failed.
RESULTS = {"none": {0: 0.300, 1: 0.320, 2: 0.310}, "cam": {0: 0.330, 1: 0.330}, "se": {0: 0.310, 2: 0.321},
           "eca": {0: 0.310, 1: 0.330, 2: 0.321}}
COSTS = {"none": {"params": 100, "gflops": 1.0, "cpu_ms": 10.0}, "cam": {"params": 110, "gflops": 1.01, "cpu_ms": 11.0},
         "se": {"params": 105, "gflops": 1.0, "cpu_ms": 10.5}, "eca": {"params": 101, "gflops": 1.0, "cpu_ms": 10.2}}


def _write_run(study_dir: Path, variant: str, seed: int, ap: float) -> None:
    run_dir = study_dir / variant / f"seed{seed}"
    run_dir.mkdir(parents=True)
    stats_of = {"AP50:95": ap, "AP50": ap + 0.2, "AP75": ap - 0.05, "AP_small": -1.0, "AP_medium": ap, "AP_large": ap}
    scored = {"last": {"ap50_95": ap, "stats": stats_of}, "best": {"ap50_95": ap + 0.004 * (1 + seed), "stats": {}}}
    (run_dir / "run.json").write_text(json.dumps({"status": "done", "variant": variant, "seed": seed, "select": "last",
                                                  "train_seconds": 60.0 + seed, "ap50_95": ap, "ap50": ap + 0.2,
                                                  "stats": stats_of, "scored": scored}))
    (run_dir / "metrics.jsonl").write_text(
        json.dumps({"kind": "eval", "epoch": 1, "ap50_95": ap / 2}) + "\n"
        + json.dumps({"kind": "eval", "epoch": 2, "ap50_95": ap}) + "\n{\"torn")


def _plan(seeds=(0, 1, 2), margin=0.0) -> StudyPlan:
    return StudyPlan("exps/x.py", "x", parse_variants("none,cam,se,eca", ["cam", "se", "eca"]), list(seeds), "none", 8,
                     False, [], margin=margin)


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    claim_study_dir(tmp_path, _plan(), force=False)
    for variant, by_seed in RESULTS.items():
        for seed, ap in by_seed.items():
            _write_run(tmp_path, variant, seed, ap)
    (tmp_path / "cam" / "seed2").mkdir(parents=True)
    (tmp_path / "cam" / "seed2" / "latest_ckpt.pth").write_bytes(b"")
    failed = tmp_path / "se" / "seed1"
    failed.mkdir(parents=True)
    (failed / "run.json").write_text(json.dumps({"status": "failed", "variant": "se", "seed": 1, "stage": "train",
                                                 "iteration": 120, "reason": "non-finite loss at iteration 120"}))
    return tmp_path


def test_variant_rows_by_hand(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    rows = {row["variant"]: row for row in report.variants}
    assert rows["none"]["AP50:95"]["mean"] == pytest.approx(0.31)
    assert rows["none"]["AP50:95"]["std"] == pytest.approx(0.01)
    assert rows["cam"]["seeds"] == [0, 1] and rows["se"]["failed"] == [1]
    assert rows["none"]["APs"]["mean"] is None  # COCO's -1: no small objects
    assert rows["cam"]["cpu_ms_overhead"] == pytest.approx(0.1)
    assert rows["eca"]["train_seconds"] == pytest.approx(61.0)
    assert rows["none"]["best_minus_last"]["mean"] == pytest.approx(0.008)  # 0.004, 0.008, 0.012
    assert report.missing == ["cam/seed2 (running, or interrupted: the same study command continues it)"]
    assert report.curves["none"][0] == pytest.approx({1: 0.15, 2: 0.30})


def test_comparisons_against_scipy_and_holm_by_hand(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    by_variant = {entry["variant"]: entry for entry in report.comparisons}
    cam, se, eca = by_variant["cam"], by_variant["se"], by_variant["eca"]
    assert cam["differences"] == pytest.approx([0.03, 0.01]) and se["seeds"] == [0, 2]
    raw = {name: stats.ttest_1samp(by_variant[name]["differences"], 0.0).pvalue for name in ("cam", "se", "eca")}
    assert [by_variant[name]["p"] for name in raw] == pytest.approx(list(raw.values()))
    # Holm by hand: the smallest raw p times 3, the next times 2 (kept monotone), the largest times 1.
    order = sorted(raw, key=raw.get)
    holm = {order[0]: 3 * raw[order[0]]}
    holm[order[1]] = max(holm[order[0]], 2 * raw[order[1]])
    holm[order[2]] = max(holm[order[1]], raw[order[2]])
    assert {name: by_variant[name]["p_adjusted"] for name in raw} == pytest.approx({k: min(1, v) for k, v in holm.items()})
    # eca's differences 0.010, 0.010, 0.011: the smallest p, so its interval is at Holm's first level 0.05 / 3.
    assert order[0] == "eca" and eca["alpha"] == pytest.approx(0.05 / 3)
    half_width = stats.t.ppf(1 - 0.05 / 6, 2) * np.std([0.010, 0.010, 0.011], ddof=1) / math.sqrt(3)
    assert (eca["ci_low"], eca["ci_high"]) == pytest.approx((0.0103333 - half_width, 0.0103333 + half_width), abs=1e-6)
    assert eca["verdict"] == "helps" and eca["ci_low"] > 0
    assert cam["verdict"] == "inconclusive"
    assert cam["sign_flip_p"] == pytest.approx(0.5) and cam["sign_flip_min_p"] == pytest.approx(0.5)


def test_failures_get_a_sensitivity_line_with_the_worst_ap_of_the_seed(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    sensitivity = {entry["variant"]: entry for entry in report.sensitivity}
    # se/seed1 scored as the worst AP50:95 of seed 1's finished runs: none 0.320, cam 0.330, eca 0.330 -> 0.320.
    assert sensitivity["se"]["seeds"] == [0, 1, 2]
    assert sensitivity["se"]["differences"] == pytest.approx([0.010, 0.0, 0.011])
    assert report.failures["se"] == {1: {"stage": "train", "iteration": 120, "reason": "non-finite loss at iteration 120"}}
    assert "Sensitivity" in report.markdown and "se/seed1 (train, iteration 120" in report.markdown


def test_verdicts_after_seeds_were_added_to_a_reported_study_are_exploratory(study_dir: Path):
    first = build_report(study_dir, costs=COSTS)
    assert not first.look["seeds_added_after_a_look"] and "seeds added after a look" not in first.markdown
    claim_study_dir(study_dir, _plan(seeds=(0, 1, 2, 3)), force=True)
    for variant in RESULTS:
        _write_run(study_dir, variant, 3, 0.35 if variant == "none" else 0.361)
    second = build_report(study_dir, costs=COSTS)
    looks = json.loads((study_dir / LOOKS_FILE).read_text())
    assert [look["plan_seeds"] for look in looks] == [[0, 1, 2], [0, 1, 2, 3]]
    assert second.look["seeds_added_after_a_look"]
    eca = next(entry for entry in second.comparisons if entry["variant"] == "eca")
    assert eca["exploratory"] and "helps, exploratory (seeds added after a look)" in second.markdown


def test_margin_gives_equivalence_and_by_margin_verdicts(study_dir: Path):
    claim_study_dir(study_dir, _plan(margin=0.005), force=True)
    report = build_report(study_dir, costs=COSTS, effect_points=0.5)
    eca = next(entry for entry in report.comparisons if entry["variant"] == "eca")
    assert eca["verdict"] == "helps_by_margin" and "helps by more than 0.5 AP points" in report.markdown
    assert eca["tost_p"] is not None and "Equivalence within +-0.5 AP points" in report.markdown
    def power(count):  # Monte Carlo of the paired t test (statsmodels' solver gives NaN for so large an effect)
        rng = np.random.default_rng(0)
        draws = rng.normal(0.005, eca["sd"], (200_000, count))
        t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / math.sqrt(count))
        return float(np.mean(np.abs(t) > stats.t.ppf(1 - eca["alpha"] / 2, count - 1)))

    needed = eca["seeds_needed"]
    assert power(needed) >= 0.79 and power(needed - 1) < 0.8 and "seeds for 0.5 AP points" in report.markdown


def test_written_files_store_fractions(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    paths = write_report(report, study_dir)
    markdown = (study_dir / "study.md").read_text()
    assert "| eca " in markdown and "helps" in markdown and "Missing runs" in markdown
    assert "31.00 +- 1.00" in markdown and "AP50:95 %" in markdown and "Holm's step-down" in markdown
    rows = {row["variant"]: row for row in csv.DictReader((study_dir / "study.csv").open())}
    assert rows["none"]["diff_verdict"] == "baseline" and rows["none"]["select"] == "last"
    assert float(rows["eca"]["diff_mean"]) == pytest.approx(0.031 / 3)
    assert float(rows["none"]["AP50:95_mean"]) == pytest.approx(0.31)
    data = json.loads((study_dir / "study.json").read_text())
    assert data["ap_unit"] == "fraction" and data["comparisons"][2]["verdict"] == "helps"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install" in markdown
    else:
        assert (study_dir / "study.png").stat().st_size > 1000 and study_dir / "study.png" in paths


def test_bootstrap_interval_from_the_runs_detections(tmp_path: Path, generated_coco):
    """Three seeds of a baseline and a variant whose detections score higher; the report bootstraps them."""
    from pycocotools.cocoeval import COCOeval

    from yolox.data.datasets.coco import build_coco
    from yolox.evaluators.coco_evaluator import results_to_coco

    dataset, results = generated_coco(4, images=30)
    annotations = tmp_path / "instances_val.json"
    annotations.write_text(json.dumps(dataset))
    coco_gt = build_coco(json.loads(annotations.read_text()))
    plan = StudyPlan("exps/x.py", "x", parse_variants("none,cam", ["cam"]), [0, 1, 2], "none", 8, False, [])
    claim_study_dir(tmp_path / "study", plan, force=False)
    rng = np.random.default_rng(0)
    for variant, boost in (("none", 0.0), ("cam", 0.3)):
        for seed in range(3):
            scored = results.copy()
            # The variant ranks its detections that overlap an object higher (a better detector).
            scored[:, 5] = np.clip(scored[:, 5] + rng.normal(0, 0.05, len(scored)) + boost * (scored[:, 5] > 0.05), 0, 1)
            with contextlib.redirect_stdout(io.StringIO()):
                evaluation = COCOeval(coco_gt, results_to_coco(coco_gt, scored), "bbox")
                evaluation.evaluate()
                evaluation.accumulate()
                evaluation.summarize()
            run_dir = tmp_path / "study" / variant / f"seed{seed}"
            run_dir.mkdir(parents=True)
            np.savez_compressed(run_dir / "detections.npz", results=scored, annotations=np.array(str(annotations)))
            (run_dir / "run.json").write_text(json.dumps({"status": "done", "ap50_95": float(evaluation.stats[0]),
                                                          "stats": {"AP50:95": float(evaluation.stats[0])},
                                                          "detections": "detections.npz"}))
    report = build_report(tmp_path / "study", costs={}, bootstrap=200)
    cam = report.comparisons[0]
    assert report.bootstrap["replicates"] == 200 and report.bootstrap["images"] == 30
    assert cam["bootstrap_low"] < cam["mean"] < cam["bootstrap_high"]
    assert "bootstrap: two-level" in report.markdown
    # A run whose detections do not give its recorded AP is not bootstrapped, and the report says why.
    record_path = tmp_path / "study" / "cam" / "seed1" / "run.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "ap50_95": record["ap50_95"] + 0.01, "stats": {}}))
    report = build_report(tmp_path / "study", costs={}, bootstrap=200)
    assert report.comparisons[0]["bootstrap_low"] is None and "cam/seed1: its detections give" in report.markdown
