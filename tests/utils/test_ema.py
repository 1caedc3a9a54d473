"""ModelEMA: the decay ramp, the averaging formula and wrappers."""

import math

import pytest
import torch
from torch import nn

from yolox.utils.ema import ModelEMA, unwrap_model


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_decay_ramp_follows_the_formula() -> None:
    ema = ModelEMA(_small_model(), decay=0.9998)
    assert ema.decay() == 0.0
    ema.updates = 2000
    assert ema.decay() == pytest.approx(0.9998 * (1 - math.exp(-1)))
    ema.updates = 10**6
    assert ema.decay() == pytest.approx(0.9998)


def test_update_averages_floats_and_copies_integer_buffers() -> None:
    model = _small_model()
    ema = ModelEMA(model, decay=0.9, updates=10)
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    model[1].num_batches_tracked += 7
    ema.update(model)
    assert ema.updates == 11
    keep = 0.9 * (1 - math.exp(-11 / 2000))
    after = ema.ema.state_dict()
    current = model.state_dict()
    for name, old in before.items():
        if old.dtype.is_floating_point:
            torch.testing.assert_close(after[name], keep * old + (1 - keep) * current[name])
        else:
            assert torch.equal(after[name], current[name])
    assert not any(p.requires_grad for p in ema.ema.parameters())
    assert not ema.ema.training


def test_ema_is_a_copy_and_unwraps_parallel() -> None:
    model = _small_model()
    wrapped = nn.DataParallel(model)
    assert unwrap_model(wrapped) is model
    ema = ModelEMA(wrapped)
    assert isinstance(ema.ema, nn.Sequential)
    with torch.no_grad():
        model[0].weight.zero_()
    assert ema.ema[0].weight.abs().sum() > 0
