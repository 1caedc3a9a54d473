"""``python -m yolox.tools.make_dataset``: runs ``yolox make-dataset``."""

import sys

from yolox.cli.make_dataset import main

if __name__ == "__main__":
    sys.exit(main())
