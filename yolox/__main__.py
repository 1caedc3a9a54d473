"""``python -m yolox <command>``: the ``yolox`` command."""

import sys

from yolox.cli.main import main

sys.exit(main())
