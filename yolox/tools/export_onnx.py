"""``python -m yolox.tools.export_onnx``: runs ``yolox export-onnx``."""

import sys

from yolox.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
