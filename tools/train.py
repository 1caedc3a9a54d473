#!/usr/bin/env python
"""Train a YOLOX model: ``python tools/train.py -f exps/yolox_s_cam.py -d 8 -b 64 --fp16``."""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.core.train_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
