"""The report's figures against a hand computation on fixed run results."""

import csv
import json
import math
from pathlib import Path

import pytest

from yolox.study.plan import StudyPlan, claim_study_dir, parse_variants
from yolox.study.report import build_report, write_report

# AP50:95 (0..1) by variant and seed; cam/seed2 has not finished.
RESULTS = {"none": {0: 0.300, 1: 0.320, 2: 0.310}, "cam": {0: 0.330, 1: 0.330}, "se": {0: 0.310, 1: 0.330, 2: 0.321}}
COSTS = {"none": {"params": 100, "gflops": 1.0, "cpu_ms": 10.0}, "cam": {"params": 110, "gflops": 1.01, "cpu_ms": 11.0},
         "se": {"params": 105, "gflops": 1.0, "cpu_ms": 10.5}}


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    plan = StudyPlan("exps/x.py", "x", parse_variants("none,cam,se", ["cam", "se"]), [0, 1, 2], "none", 8, False, [])
    claim_study_dir(tmp_path, plan, force=False)
    for variant, by_seed in RESULTS.items():
        for seed, ap in by_seed.items():
            run_dir = tmp_path / variant / f"seed{seed}"
            run_dir.mkdir(parents=True)
            stats = {"AP50:95": ap, "AP50": ap + 0.2, "AP75": ap - 0.05, "AP_small": -1.0, "AP_medium": ap, "AP_large": ap}
            (run_dir / "run.json").write_text(json.dumps({"variant": variant, "seed": seed, "train_seconds": 60.0 + seed,
                                                          "ap50_95": ap, "ap50": ap + 0.2, "stats": stats}))
            (run_dir / "metrics.jsonl").write_text(
                json.dumps({"kind": "eval", "epoch": 1, "ap50_95": ap / 2}) + "\n"
                + json.dumps({"kind": "eval", "epoch": 2, "ap50_95": ap}) + "\n{\"torn")
    (tmp_path / "cam" / "seed2").mkdir(parents=True)
    (tmp_path / "cam" / "seed2" / "latest_ckpt.pth").write_bytes(b"")
    return tmp_path


def test_figures_match_a_hand_computation(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    rows = {row["variant"]: row for row in report.variants}
    assert rows["none"]["AP50:95"]["mean"] == pytest.approx(31.0)
    assert rows["none"]["AP50:95"]["std"] == pytest.approx(1.0)
    assert rows["cam"]["seeds"] == [0, 1]
    assert rows["cam"]["AP50:95"]["std"] == pytest.approx(0.0)
    assert rows["none"]["APs"]["mean"] is None  # COCO's -1: no small objects
    assert rows["cam"]["cpu_ms_overhead"] == pytest.approx(0.1)
    assert rows["se"]["train_seconds"] == pytest.approx(61.0)

    by_variant = {entry["variant"]: entry for entry in report.comparisons}
    cam = by_variant["cam"]  # differences 3.0 and 1.0 AP points; t(0.975, 1) = 12.7062
    assert cam["differences"] == pytest.approx([3.0, 1.0])
    half_width = 12.7062 * math.sqrt(2.0) / math.sqrt(2)
    assert (cam["ci_low"], cam["ci_high"]) == pytest.approx((2.0 - half_width, 2.0 + half_width), abs=1e-3)
    assert cam["verdict"] == "inconclusive"
    se = by_variant["se"]  # differences 1.0, 1.0, 1.1: a narrow interval above zero
    assert se["mean"] == pytest.approx(1.0333333)
    assert se["ci_low"] > 0 and se["verdict"] == "helps"
    assert report.noise_floor["std"] == pytest.approx(1.0)
    assert report.missing == ["cam/seed2 (running, or interrupted: the same study command continues it)"]
    assert report.curves["none"][0] == pytest.approx({1: 15.0, 2: 30.0})


def test_written_files(study_dir: Path):
    report = build_report(study_dir, costs=COSTS)
    paths = write_report(report, study_dir)
    markdown = (study_dir / "study.md").read_text()
    assert "| se " in markdown and "helps" in markdown and "Missing runs" in markdown
    assert "31.00 +- 1.00" in markdown and "Noise floor" in markdown
    rows = {row["variant"]: row for row in csv.DictReader((study_dir / "study.csv").open())}
    assert rows["none"]["verdict"] == "baseline"
    assert float(rows["se"]["diff_mean"]) == pytest.approx(1.0333333)
    data = json.loads((study_dir / "study.json").read_text())
    assert data["comparisons"][1]["verdict"] == "helps"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install" in markdown
    else:
        assert (study_dir / "study.png").stat().st_size > 1000 and study_dir / "study.png" in paths
