"""``python -m yolox.tools.study``: runs ``yolox study``."""

import sys

from yolox.cli.study import main

if __name__ == "__main__":
    sys.exit(main())
