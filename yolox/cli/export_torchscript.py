"""Export a YOLOX checkpoint to TorchScript (torch.jit.trace) with its metadata as an extra file.

Example::

    python tools/export_torchscript.py -n yolox-s -c yolox_s.pth --output-name yolox_s.torchscript.pt
"""

import argparse
import sys
from pathlib import Path

from yolox.cli.common import (
    add_exp_arguments,
    add_tsize_argument,
    exp_from_args,
    load_exp_model,
    run_command,
    tsize_from_args,
)


def make_parser() -> argparse.ArgumentParser:
    """The exporter's command-line flags."""
    parser = argparse.ArgumentParser(description="Export a YOLOX model to TorchScript with torch.jit.trace.")
    parser.add_argument("--output-name", default=None, help="output file (default: <exp_name>.torchscript.pt)")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help="decode boxes inside the model (else the output holds raw offsets per anchor)")
    add_tsize_argument(parser)
    add_exp_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> Path:
    """Load the exp and checkpoint, trace, save, and return the written file."""
    import torch

    from yolox.utils.export import export_metadata, export_torchscript, prepare_for_export

    exp = exp_from_args(args)
    input_hw = tsize_from_args(args, exp.test_size)
    model, class_names = load_exp_model(exp, args.ckpt, torch.device("cpu"))
    model = prepare_for_export(model, args.decode_in_inference)
    metadata = export_metadata(exp, class_names, input_hw, args.decode_in_inference, dynamic_batch=True,
                               dynamic_hw=False, strides=model.head.strides)
    output = Path(args.output_name or f"{exp.exp_name}.torchscript.pt")
    export_torchscript(model, output, input_hw, metadata)
    print(f"wrote {output} (traced at {input_hw[0]}x{input_hw[1]}, "
          f"boxes {'decoded' if args.decode_in_inference else 'raw'})")
    return output


def main(argv: list[str] | None = None) -> int:
    """Entry point: export, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
