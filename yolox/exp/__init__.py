"""Experiment descriptions: every knob of a run in one object."""

from yolox.exp.base_exp import BaseExp
from yolox.exp.build import DEFAULT_EXPS, get_exp
from yolox.exp.yolox_base import Exp, check_exp_value

__all__ = ["BaseExp", "DEFAULT_EXPS", "Exp", "check_exp_value", "get_exp"]
