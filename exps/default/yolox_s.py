"""The default yolox_s exp as a file, for `-f exps/default/yolox_s.py` and for copying into new exps."""

from yolox.exp.default.yolox_s import Exp  # noqa: F401  (the tools look up the name Exp)
