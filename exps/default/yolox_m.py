"""The default yolox_m exp as a file, for `-f exps/default/yolox_m.py` and for copying into new exps."""

from yolox.exp.default.yolox_m import Exp  # noqa: F401  (the tools look up the name Exp)
