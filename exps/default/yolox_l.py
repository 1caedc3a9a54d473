"""The default yolox_l exp as a file, for `-f exps/default/yolox_l.py` and for copying into new exps."""

from yolox.exp.default.yolox_l import Exp  # noqa: F401  (the tools look up the name Exp)
