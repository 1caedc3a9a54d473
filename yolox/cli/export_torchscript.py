"""Export a YOLOX checkpoint to TorchScript (torch.jit.trace) with its metadata as an extra file.

Example::

    python tools/export_torchscript.py -n yolox-s -c yolox_s.pth --output-name yolox_s.torchscript.pt
"""

import argparse
import sys
from pathlib import Path

from yolox.cli.common import add_export_arguments, command_parser, load_model_for_export, run_command


def make_parser() -> argparse.ArgumentParser:
    """The exporter's command-line flags."""
    parser = command_parser("yolox export-torchscript", "Export a YOLOX model to TorchScript with torch.jit.trace.")
    parser.add_argument("--output-name", default=None, help="output file (default: <exp_name>.torchscript.pt)")
    add_export_arguments(parser, "model")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Load the exp and checkpoint, trace, save, and return the written file."""
    from yolox.utils.export import export_torchscript

    exp, model, input_hw, metadata = load_model_for_export(args, dynamic_hw=False)
    output = Path(args.output_name or f"{exp.exp_name}.torchscript.pt")
    export_torchscript(model, output, input_hw, metadata, batch_size=args.batch_size or 1)
    print(f"wrote {output} (traced at {input_hw[0]}x{input_hw[1]}, "
          f"boxes {'decoded' if args.decode_in_inference else 'raw'})")
    return output


def main(argv: list[str] | None = None) -> int:
    """Entry point: export, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
