"""The ``yolox`` command: ``yolox <command> [flags]`` runs ``yolox.cli.<module>.main`` with the flags.

setup.py installs it as a console script; ``python -m yolox`` is the same. Each command's module is imported
only when it runs, so ``yolox --help`` and a command's ``--help`` stay quick.
"""

import importlib
import sys
from collections.abc import Sequence

from yolox import __version__

# command -> (module under yolox.cli, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a detector (the official YOLOX flags, one or many processes)"),
    "eval": ("eval", "evaluate a checkpoint (COCO or VOC metrics), or time it with --speed"),
    "demo": ("demo", "detect objects in images, a video or a webcam"),
    "export-onnx": ("export_onnx", "export a checkpoint to ONNX"),
    "export-torchscript": ("export_torchscript", "export a checkpoint to TorchScript"),
    "study": ("study", "a paired multi-seed study of attention variants; report, plan"),
    "benchmark": ("benchmark", "speed benchmarks: latency, train-step, data, eval, gpu, all"),
    "check-data": ("check_data", "decode every image of an exp's data and list all problems"),
    "visualize-attention": ("visualize_attention", "draw what each attention block attends to"),
    "make-dataset": ("make_dataset", "write the built-in synthetic shapes dataset"),
    "convert-dataset": ("convert_dataset", "write COCO JSON from a YOLO-format (ultralytics) dataset"),
    "quickstart": ("quickstart", "train and evaluate an attention model on the shapes data in minutes"),
}


def usage() -> str:
    """The text of ``yolox --help``: one line per command."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"yolox {__version__}", "", "usage: yolox <command> [flags]   (yolox <command> --help lists the flags)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command that ``argv[0]`` names with the rest of ``argv``; return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"yolox {__version__}")
        return 0
    # The module names (check_data) work as well as the command names (check-data).
    name = argv[0].replace("_", "-")
    if name not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}: use one of {', '.join(COMMANDS)} (yolox --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"yolox.cli.{COMMANDS[name][0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
