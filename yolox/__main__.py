"""``python -m yolox <command>``: the ``yolox`` command."""

import sys

from yolox.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
