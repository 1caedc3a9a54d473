"""The default exps (yolox-nano ... yolox-x, yolov3), importable from an installed package."""
