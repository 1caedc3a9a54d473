"""``python -m yolox.tools.quickstart``: runs ``yolox quickstart``."""

import sys

from yolox.cli.quickstart import main

if __name__ == "__main__":
    sys.exit(main())
