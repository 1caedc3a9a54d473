"""Learning-rate schedules at the iterations that define them."""

import math

import pytest

from yolox.utils.lr_scheduler import LRScheduler

LR = 0.01
ITERS = 100  # per epoch


def _yolox() -> LRScheduler:
    return LRScheduler("yoloxwarmcos", LR, ITERS, 300, warmup_epochs=5, warmup_lr_start=0.0, no_aug_epochs=15,
                       min_lr_ratio=0.05)


def test_yoloxwarmcos_key_points() -> None:
    sched = _yolox()
    assert sched.update_lr(0) == 0.0
    assert sched.update_lr(250) == pytest.approx(LR * 0.25)  # quadratic: half-way through warm-up gives a quarter
    assert sched.update_lr(500) == pytest.approx(LR)
    middle = 500 + (30000 - 500 - 1500) // 2
    assert sched.update_lr(middle) == pytest.approx(LR * 0.05 + 0.5 * (LR - LR * 0.05))
    assert sched.update_lr(28499) == pytest.approx(LR * 0.05, rel=1e-6)
    for flat in (28500, 29000, 29999):
        assert sched.update_lr(flat) == LR * 0.05
    values = [sched.update_lr(i) for i in range(500, 28500, 97)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_warmcos_cos_and_multistep() -> None:
    warm = LRScheduler("warmcos", LR, ITERS, 10, warmup_epochs=1, warmup_lr_start=0.001)
    assert warm.update_lr(50) == pytest.approx(0.001 + (LR - 0.001) * 0.5)
    assert warm.update_lr(100) == pytest.approx(LR)
    assert warm.update_lr(550) == pytest.approx(LR * 0.5)
    assert warm.update_lr(1000) == pytest.approx(0.0, abs=1e-12)

    cos = LRScheduler("cos", LR, ITERS, 10)
    assert cos.update_lr(0) == pytest.approx(LR)
    assert cos.update_lr(250) == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi / 4)))
    assert cos.update_lr(500) == pytest.approx(LR * 0.5)

    steps = LRScheduler("multistep", LR, ITERS, 10, milestones=[3, 6], gamma=0.1)
    assert steps.update_lr(299) == LR
    assert steps.update_lr(300) == pytest.approx(LR * 0.1)
    assert steps.update_lr(600) == pytest.approx(LR * 0.01)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"name": "linear"}, "yoloxwarmcos, warmcos, cos, multistep"),
        ({"name": "multistep"}, "milestones"),
        ({"name": "yoloxwarmcos", "warmup_epochs": 6, "no_aug_epochs": 5}, "max_epoch"),
        ({"name": "cos", "iters_per_epoch": 0}, "iters_per_epoch"),
    ],
)
def test_bad_settings_are_explained(kwargs: dict, words: str) -> None:
    options = {"name": "cos", "lr": LR, "iters_per_epoch": ITERS, "total_epochs": 10, **kwargs}
    with pytest.raises(ValueError, match=words):
        LRScheduler(**options)


def test_warmup_then_only_no_aug_epochs_is_a_valid_schedule() -> None:
    # max_epoch 2, warmup_epochs 1, no_aug_epochs 1: warm-up to the peak, then the no-aug epoch at the minimum.
    scheduler = LRScheduler("yoloxwarmcos", 0.01, iters_per_epoch=4, total_epochs=2, warmup_epochs=1,
                            no_aug_epochs=1, min_lr_ratio=0.05)
    rates = [scheduler.update_lr(step) for step in range(9)]
    assert rates[4] == pytest.approx(0.01)
    assert rates[5:] == [pytest.approx(0.0005)] * 4
    with pytest.raises(ValueError, match=r"<= max_epoch \(2\)"):
        LRScheduler("yoloxwarmcos", 0.01, iters_per_epoch=4, total_epochs=2, warmup_epochs=2, no_aug_epochs=1)
