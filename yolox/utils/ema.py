"""Exponential moving average of a model's weights, used for evaluation and for the saved checkpoints."""

import math
from copy import deepcopy

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DataParallel/DistributedDataParallel wrapper (or the model itself)."""
    if isinstance(model, (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * model`` over every floating-point tensor of the state dict.

    The decay ramps up as ``d = decay * (1 - exp(-updates / ramp))`` so that the first updates follow the
    model closely instead of being dominated by the random initialisation. Integer buffers (BatchNorm's
    ``num_batches_tracked``) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, updates: int = 0, ramp: float = 2000.0) -> None:
        self.ema = deepcopy(unwrap_model(model)).eval()
        for param in self.ema.parameters():
            param.requires_grad_(False)
        self.decay_max = decay
        self.ramp = ramp
        self.updates = updates

    def decay(self) -> float:
        """The decay used by the next update, after the ramp for the updates done so far."""
        return self.decay_max * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        self.updates += 1
        keep = self.decay()
        source = unwrap_model(model).state_dict()
        float_targets, float_sources = [], []
        for name, target in self.ema.state_dict().items():
            value = source[name].detach()
            if target.dtype.is_floating_point:
                float_targets.append(target)
                float_sources.append(value.to(target.dtype))
            else:
                target.copy_(value)
        # One fused call per step instead of a Python loop of small kernels.
        torch._foreach_lerp_(float_targets, float_sources, 1.0 - keep)
