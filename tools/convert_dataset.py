#!/usr/bin/env python
"""Forwards to ``yolox.cli.convert_dataset``; ``python tools/convert_dataset.py --help`` lists the flags."""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.cli.convert_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
