"""Paired learning curves and the area under the AP curve, on fixed metrics files, against hand computations."""

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from yolox.study.curves import curve_area, epoch_curve, paired_curves

# AP50:95 by (variant, seed) at epochs 2, 4, 6 (seed 2 of cam lacks epoch 6: a run still going).
CURVES = {
    ("none", 0): {2: 0.10, 4: 0.20, 6: 0.30},
    ("none", 1): {2: 0.12, 4: 0.22, 6: 0.28},
    ("none", 2): {2: 0.08, 4: 0.18, 6: 0.26},
    ("cam", 0): {2: 0.05, 4: 0.19, 6: 0.31},
    ("cam", 1): {2: 0.08, 4: 0.20, 6: 0.30},
    ("cam", 2): {2: 0.02, 4: 0.17},
}


def _write_metrics(study_dir: Path) -> dict:
    curves: dict = {}
    for (variant, seed), by_epoch in CURVES.items():
        run_dir = study_dir / variant / f"seed{seed}"
        run_dir.mkdir(parents=True)
        lines = [json.dumps({"kind": "train", "time": 1.0, "epoch": 1, "iteration": 5, "total_loss": 3.0})]
        lines += [json.dumps({"kind": "eval", "time": 2.0 + epoch, "epoch": epoch, "iteration": 10 * epoch,
                              "ap50_95": value, "ap50": 2 * value}) for epoch, value in by_epoch.items()]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        curves.setdefault(variant, {})[seed], bad_lines = epoch_curve(run_dir)
        assert bad_lines == []
    return curves


def test_paired_curves_equal_hand_computed_means_and_scipy_intervals(tmp_path: Path):
    curves = _write_metrics(tmp_path)
    assert curves["cam"][2] == {2: 0.02, 4: 0.17}
    rows = {row["epoch"]: row for row in paired_curves(curves, "none")["cam"]}
    assert sorted(rows) == [2, 4, 6]
    # Epoch 2: differences -0.05, -0.04, -0.06; mean -0.05, sd 0.01; 95% t-interval -0.05 +- t(0.975, 2) * 0.01 / sqrt(3).
    assert rows[2]["seeds"] == [0, 1, 2] and rows[2]["mean"] == pytest.approx(-0.05)
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert rows[2]["ci_low"] == pytest.approx(-0.05 - half) and rows[2]["ci_high"] == pytest.approx(-0.05 + half)
    # Epoch 6: only seeds 0 and 1 have both runs: differences +0.01, +0.02.
    assert rows[6]["seeds"] == [0, 1] and rows[6]["mean"] == pytest.approx(0.015)
    low, high = stats.ttest_1samp([0.01, 0.02], 0.0).confidence_interval(0.95)
    assert (rows[6]["ci_low"], rows[6]["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    # Epoch 4: -0.01, -0.02, -0.01.
    assert rows[4]["mean"] == pytest.approx(-0.04 / 3)


def test_curve_area_is_the_trapezoid_mean_over_the_span():
    # (0.10 + 0.20) / 2 * 2 + (0.20 + 0.30) / 2 * 2 = 0.8 over 4 epochs: 0.2.
    assert curve_area({2: 0.10, 4: 0.20, 6: 0.30}) == pytest.approx(0.2)
    # Uneven spacing: (0.1 + 0.3) / 2 * 1 + (0.3 + 0.4) / 2 * 3 = 1.25 over 4 epochs.
    assert curve_area({1: 0.1, 2: 0.3, 5: 0.4}) == pytest.approx(1.25 / 4)
    assert curve_area({3: 0.25}) == 0.25 and curve_area({}) is None


def test_no_interval_without_spread():
    curves = {"none": {0: {1: 0.1}, 1: {1: 0.2}}, "se": {0: {1: 0.1}, 1: {1: 0.2}}}
    (row,) = paired_curves(curves, "none")["se"]
    assert row["mean"] == 0.0 and row["ci_low"] is None
