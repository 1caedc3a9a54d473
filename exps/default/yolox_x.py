"""The default yolox_x exp as a file, for `-f exps/default/yolox_x.py` and for copying into new exps."""

from yolox.exp.default.yolox_x import Exp  # noqa: F401  (the tools look up the name Exp)
