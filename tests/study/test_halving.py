"""Successive halving: the rung epochs, a rung's decision against scipy, and an exact stop-and-resume of training."""

import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from yolox.study.halving import HALVING_FILE, build_rule, decide_rung, load_decisions, record_decision, stopped_variants
from yolox.study.plan import StudyPlan, parse_variants
from yolox.study.records import StudyFileError
from yolox.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


def test_rungs_fall_on_epochs_of_the_schedule():
    rule = build_rule("0.2,0.5", 30)
    assert rule.epochs == (6, 15) and rule.total_epochs == 30 and rule.active
    assert not build_rule(None, 30).active
    with pytest.raises(UserError, match="increasing fractions"):
        build_rule("0.5,0.2", 30)
    with pytest.raises(UserError, match="its own epoch"):
        build_rule("0.2,0.3", 3)
    with pytest.raises(UserError, match="fractions of the schedule"):
        build_rule("half", 30)


def _write_rung(study_dir: Path, values: dict) -> None:
    for (variant, seed), ap in values.items():
        run_dir = study_dir / variant / f"seed{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "time": 1.0, "epoch": 3, "iteration": 30,
                                                           "ap50_95": ap}) + "\n")


def test_a_rung_stops_the_variant_whose_corrected_interval_lies_below_minus_the_margin(tmp_path: Path):
    variants = parse_variants("none,bad,meh", ["bad", "meh"])
    plan = StudyPlan(SHAPES_EXP, "shapes", variants, [0, 1, 2], "none", 4, False, [], correction="holm",
                     margin=0.01, halving=build_rule("0.3", 10))
    base = {0: 0.30, 1: 0.32, 2: 0.28}
    bad = {0: 0.10, 1: 0.11, 2: 0.07}    # differences -0.20, -0.21, -0.21
    meh = {0: 0.29, 1: 0.33, 2: 0.265}   # differences -0.01, +0.01, -0.015
    _write_rung(tmp_path, {**{("none", s): v for s, v in base.items()}, **{("bad", s): v for s, v in bad.items()},
                           **{("meh", s): v for s, v in meh.items()}})
    decision = decide_rung(plan, tmp_path, 0, ["none", "bad", "meh"])
    assert decision["epoch"] == 3 and decision["stopped"] == ["bad"]
    # Holm over two comparisons: bad has the smaller p, so its interval is at 1 - 0.05 / 2.
    differences = [bad[s] - base[s] for s in (0, 1, 2)]
    assert stats.ttest_1samp(differences, 0).pvalue < stats.ttest_1samp([meh[s] - base[s] for s in (0, 1, 2)], 0).pvalue
    half = stats.t.ppf(1 - 0.025 / 2, 2) * stats.tstd(differences) / math.sqrt(3)
    entry = decision["comparisons"]["bad"]
    assert entry["alpha"] == pytest.approx(0.025)
    assert entry["ci_high"] == pytest.approx(sum(differences) / 3 + half) and entry["ci_high"] < -0.01
    assert not decision["comparisons"]["meh"]["stopped"]
    decisions = record_decision(tmp_path, decision)
    assert set(stopped_variants(decisions)) == {"bad"}
    # The baseline is never compared, so never stopped; a variant outside the survivors is not decided again.
    assert "none" not in decide_rung(plan, tmp_path, 0, ["none", "meh"])["comparisons"]


def test_a_bad_halving_file_names_its_field(tmp_path: Path):
    (tmp_path / HALVING_FILE).write_text(json.dumps([{"rung": 0, "epoch": 3, "fraction": 0.3, "stopped": [],
                                                      "comparisons": {}}]))
    with pytest.raises(StudyFileError, match=r"field \[0\]\.rung = 0 is not a whole number >= 1"):
        load_decisions(tmp_path)


def _train(run_dir: Path, overrides: list[str], extra: list[str]) -> int:
    from yolox.cli.train import main as train_main

    return train_main(["-f", SHAPES_EXP, "-b", "4", "--device", "cpu", "-expn", run_dir.name, *extra, *overrides,
                       "attention", "None", "output_dir", str(run_dir.parent)])


@pytest.mark.slow
def test_stopping_after_an_epoch_and_resuming_ends_with_the_weights_of_one_straight_run(tmp_path: Path, tiny_overrides):
    assert _train(tmp_path / "straight", tiny_overrides, []) == 0
    assert _train(tmp_path / "halted", tiny_overrides, ["--stop-after-epoch", "1"]) == 0
    halted = tmp_path / "halted"
    assert not (halted / "last_epoch_ckpt.pth").exists() and (halted / "latest_ckpt.pth").is_file()
    assert _train(halted, tiny_overrides, ["--resume"]) == 0
    straight = torch.load(tmp_path / "straight" / "last_epoch_ckpt.pth", weights_only=True)
    resumed = torch.load(halted / "last_epoch_ckpt.pth", weights_only=True)
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    evaluations = [json.loads(line) for line in (halted / "metrics.jsonl").read_text().splitlines()]
    straight_evals = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert ([r["ap50_95"] for r in evaluations if r["kind"] == "eval"]
            == [r["ap50_95"] for r in straight_evals if r["kind"] == "eval"])
