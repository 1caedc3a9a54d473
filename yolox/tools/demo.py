"""``python -m yolox.tools.demo``: runs ``yolox demo``."""

import sys

from yolox.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
