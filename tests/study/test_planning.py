"""Planning: seeds needed against statsmodels' noncentral-t power, the pilot's noise and cost, the plan command."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower

from yolox.cli.study import main as study_main
from yolox.study.plan import StudyPlan, claim_study_dir, parse_variants
from yolox.study.planning import noise_from_pilot, noise_from_seed_sd, plan_table

SHAPES_EXP = str(Path(__file__).resolve().parents[2] / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


def _statsmodels_seeds(effect, sd, alpha):
    return max(2, math.ceil(TTestPower().solve_power(effect_size=effect / sd, alpha=alpha, power=0.8) - 1e-9))


def test_seeds_with_and_without_holm_from_an_assumed_seed_sd():
    noise = noise_from_seed_sd(0.2, hours_per_run=3.5)
    rows, text = plan_table(["none", "cam", "se", "eca", "cbam"], "none", 0.5, noise, "holm")
    sd = math.sqrt(2) * 0.002
    assert rows[0]["sd"] == pytest.approx(sd)
    assert rows[0]["seeds_uncorrected"] == _statsmodels_seeds(0.005, sd, 0.05)
    assert rows[0]["seeds_corrected"] == _statsmodels_seeds(0.005, sd, 0.05 / 4)
    runs = rows[0]["seeds_corrected"] * 5
    assert f"= {runs} runs, about {runs * 3.5:.1f} hours" in text and "seeds, holm (alpha 0.0125)" in text


def test_pilot_noise_and_hours(tmp_path: Path):
    plan = StudyPlan("exps/x.py", "x", parse_variants("none,cam", ["cam"]), [0, 1, 2], "none", 8, False, [])
    claim_study_dir(tmp_path, plan, force=False)
    values = {"none": [0.30, 0.32, 0.31], "cam": [0.31, 0.35, 0.32]}
    for variant, by_seed in values.items():
        for seed, ap in enumerate(by_seed):
            run_dir = tmp_path / variant / f"seed{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "run.json").write_text(json.dumps({"status": "done", "ap50_95": ap, "stats": {"AP50:95": ap},
                                                          "train_seconds": 1800.0 * (1 + seed)}))
    noise = noise_from_pilot(tmp_path)
    expected_sd = np.std(np.subtract(values["cam"], values["none"]), ddof=1)
    assert noise.sd_by_variant["cam"] == pytest.approx(expected_sd) and noise.pooled_sd == pytest.approx(expected_sd)
    assert noise.hours_per_run == pytest.approx(1.0)
    rows, text = plan_table(["none", "cam"], "none", 1.0, noise, "holm")
    assert rows[0]["seeds_corrected"] == rows[0]["seeds_uncorrected"] == _statsmodels_seeds(0.01, expected_sd, 0.05)
    assert "hours of training (at 1.00 h per run)" in text


def test_plan_command_prints_the_table(capsys):
    assert study_main(["plan", "-f", SHAPES_EXP, "--variants", "none,cam,quarter", "--effect", "0.5", "--seed-sd", "0.2",
                       "--hours-per-run", "0.1"]) == 0
    printed = capsys.readouterr().out
    assert "| quarter " in printed and "seeds, holm (alpha 0.025)" in printed and "(assumed)" in printed
    assert study_main(["plan", "-f", SHAPES_EXP, "--variants", "none,cam", "--effect", "0.5", "--seed-sd", "-1"]) == 2


def test_plan_command_costs_the_fine_tune_design_and_halving(capsys):
    # The shapes exp trains 10 epochs; the fine-tunes 2; --hours-per-run 1 is a 10-epoch run: 0.1 h per epoch.
    assert study_main(["plan", "-f", SHAPES_EXP, "--variants", "none,cam,se", "--effect", "0.5", "--seed-sd", "0.2",
                       "--hours-per-run", "1", "--init-from", "baseline", "--finetune", "max_epoch", "2", "no_aug_epochs", "1",
                       "--halving", "0.5"]) == 0
    printed = capsys.readouterr().out
    seeds = _statsmodels_seeds(0.005, math.sqrt(2) * 0.002, 0.05 / 2)
    epochs = seeds * 3 * 2 + 10
    floor = epochs - seeds * 2 * (2 - 1)
    assert (f"{seeds} seeds x 3 variants = {3 * seeds} runs of 2 epochs (fine-tunes) + the baseline's init run of 10 "
            f"epochs, {epochs} epochs of training, about {epochs * 0.1:.1f} hours (at 0.1 h per epoch)") in printed
    assert (f"down to {floor} epochs, {floor * 0.1:.1f} hours if every variant but the baseline stops at the first "
            "rung (epoch 1)") in printed
