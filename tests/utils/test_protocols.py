"""The exp contracts name only members that the project's own Exp really has."""

from typing import Protocol

import pytest

from yolox.exp import get_exp
from yolox.utils.protocols import BenchmarkExpLike, ExpLike, TrainingExpLike


def protocol_members(protocol: type) -> set[str]:
    """The attributes and methods a Protocol declares, its parent protocols' included."""
    members: set[str] = set()
    for cls in protocol.__mro__:
        if cls is Protocol or not getattr(cls, "_is_protocol", False):
            continue
        members |= set(vars(cls).get("__annotations__", {}))
        members |= {name for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}
    return members


@pytest.mark.parametrize("protocol", [ExpLike, TrainingExpLike, BenchmarkExpLike])
def test_the_default_exp_has_every_member_of_the_contract(protocol):
    exp = get_exp(None, "yolox-nano")
    members = protocol_members(protocol)
    assert "num_classes" in members
    assert sorted(name for name in members if not hasattr(exp, name)) == []


def test_the_specialised_contracts_add_to_the_base_one():
    base = protocol_members(ExpLike)
    assert base < protocol_members(TrainingExpLike)
    assert base < protocol_members(BenchmarkExpLike)
    assert {"get_lr_scheduler", "max_epoch"} <= protocol_members(TrainingExpLike) - base
    assert {"attention_kwargs", "mixup_prob"} <= protocol_members(BenchmarkExpLike) - base
