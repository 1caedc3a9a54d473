#!/usr/bin/env python
"""Forwards to ``yolox.cli.check_data``; ``python tools/check_data.py --help`` lists the flags."""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.cli.check_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
