"""The default yolox_nano exp as a file, for `-f exps/default/yolox_nano.py` and for copying into new exps."""

from yolox.exp.default.yolox_nano import Exp  # noqa: F401  (the tools look up the name Exp)
