"""The default yolox_tiny exp as a file, for `-f exps/default/yolox_tiny.py` and for copying into new exps."""

from yolox.exp.default.yolox_tiny import Exp  # noqa: F401  (the tools look up the name Exp)
