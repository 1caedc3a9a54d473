"""``python -m yolox.tools.convert_dataset``: runs ``yolox convert-dataset``."""

import sys

from yolox.cli.convert_dataset import main

if __name__ == "__main__":
    sys.exit(main())
