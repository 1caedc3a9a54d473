"""``python -m yolox.tools.train``: runs ``yolox train``."""

import sys

from yolox.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
