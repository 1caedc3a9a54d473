#!/usr/bin/env python
"""Evaluate a checkpoint on the exp's validation set: ``python tools/eval.py -f exps/yolox_s_cam.py -c best_ckpt.pth``.

``--speed`` times inference without a checkpoint; results go to ``<output_dir>/<exp_name>/eval_results.json``.
"""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.evaluators.eval_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
