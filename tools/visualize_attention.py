#!/usr/bin/env python
"""Draw attention maps: ``python tools/visualize_attention.py -f EXP -c CKPT --path IMG_OR_DIR``."""

import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.cli.visualize_attention import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
