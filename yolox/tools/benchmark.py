"""``python -m yolox.tools.benchmark``: runs ``yolox benchmark``."""

import sys

from yolox.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
