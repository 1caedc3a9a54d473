"""``python -m yolox.tools.eval``: runs ``yolox eval``."""

import sys

from yolox.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
