#!/usr/bin/env python
"""Paired multi-seed study: ``python tools/study.py -f EXP --variants none,cam,se --seeds 0,1,2``."""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.cli.study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
