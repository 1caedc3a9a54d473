"""Paired by construction: for one seed, every variant sees the same first batch and starts from the same
non-attention weights (the attention blocks are built under a forked RNG)."""

from pathlib import Path

import torch

from yolox.cli.train import build_exp, make_parser
from yolox.study.plan import StudyPlan, parse_variants
from yolox.study.runner import train_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


def _trainer_at_step_zero(plan: StudyPlan, run) -> tuple:
    args = make_parser().parse_args(train_argv(plan, run, device="cpu", devices=None, resume=False))
    exp = build_exp(args)
    trainer = exp.get_trainer(args)
    trainer.before_train()
    images, targets = next(trainer.data_iter)[:2]
    state = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    trainer.attention_probe.close()
    return images, targets, state


def test_same_seed_gives_the_same_first_batch_and_non_attention_weights(tmp_path: Path, tiny_overrides):
    variants = parse_variants("none,cam,se", ["cam", "se"])
    plan = StudyPlan(SHAPES_EXP, "shapes", variants, [3], "none", 4, False, tiny_overrides)
    runs = plan.runs(tmp_path)
    baseline_images, baseline_targets, baseline_state = _trainer_at_step_zero(plan, runs[0])
    for run in runs[1:]:
        images, targets, state = _trainer_at_step_zero(plan, run)
        assert torch.equal(images, baseline_images), run.label
        assert torch.equal(targets, baseline_targets), run.label
        attention_keys = [key for key in state if key not in baseline_state]
        assert attention_keys and all(".attn." in key for key in attention_keys), run.label
        for key, value in baseline_state.items():
            assert torch.equal(state[key], value), f"{run.label}: {key} differs at step 0"
