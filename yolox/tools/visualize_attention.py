"""``python -m yolox.tools.visualize_attention``: runs ``yolox visualize-attention``."""

import sys

from yolox.cli.visualize_attention import main

if __name__ == "__main__":
    sys.exit(main())
