"""Test exp for successive halving: the shapes exp, a block built to hurt, and an evaluation score that shows it.

A few CPU iterations on a handful of 64-pixel images leave every run's COCO AP at 0, so the trainer's evaluation
here scores a stand-in instead: ``(0.3 + 0.005 x seed)`` times the attention blocks' mean output/input magnitude on
a fixed image (1 without attention). ``hurt`` multiplies its input by 0.01, so its score is about 1% of the
others'; an identity-initialised block stays near 1. The final scoring (tools/eval.py) is the real COCO one.
"""

from pathlib import Path

import torch
from torch import nn

from yolox.exp.build import get_exp_by_file
from yolox.models.attention import register_attention

# Loaded the way -f loads it, so the blocks it registers keep their one module name.
ShapesExp = type(get_exp_by_file(str(Path(__file__).resolve().parents[2] / "exps/example/shapes/yolox_nano_cam_shapes.py")))

HURT_FACTOR = 0.01


@register_attention("hurt")
class HurtGate(nn.Module):
    """Multiplies the features by 0.01: a variant built to hurt."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``0.01 * x``."""
        return x * HURT_FACTOR


class Exp(ShapesExp):
    """The shapes exp with the stand-in evaluation score described above."""

    def eval(self, model: nn.Module, evaluator, is_distributed: bool, half: bool = False, return_outputs: bool = False):
        """(score, score, summary): the seed's base score times the blocks' mean output/input magnitude."""
        ratios: list[float] = []
        hooks = [block.register_forward_hook(
                     lambda module, inputs, output: ratios.append(float(output.abs().mean() / inputs[0].abs().mean())))
                 for name, blocks in model.named_modules() if name.endswith("attn") for block in blocks.values()]
        try:
            with torch.no_grad():
                model(torch.full((1, 3, *self.test_size), 100.0))
        finally:
            for hook in hooks:
                hook.remove()
        score = (0.3 + 0.005 * int(self.seed)) * (sum(ratios) / len(ratios) if ratios else 1.0)
        return score, score, f"stand-in score {score:.4f}"
