"""The default yolov3 exp as a file, for `-f exps/default/yolov3.py` and for copying into new exps."""

from yolox.exp.default.yolov3 import Exp  # noqa: F401  (the tools look up the name Exp)
