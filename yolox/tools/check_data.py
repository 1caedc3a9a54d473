"""``python -m yolox.tools.check_data``: runs ``yolox check-data``."""

import sys

from yolox.cli.check_data import main

if __name__ == "__main__":
    sys.exit(main())
