"""``python -m yolox.tools.export_torchscript``: runs ``yolox export-torchscript``."""

import sys

from yolox.cli.export_torchscript import main

if __name__ == "__main__":
    sys.exit(main())
