#!/usr/bin/env python
"""Export a YOLOX checkpoint to TorchScript (torch.jit.trace) with its metadata as an extra file.

Example::

    python tools/export_torchscript.py -n yolox-s -c yolox_s.pth --output-name yolox_s.torchscript.pt
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from yolox.utils.cli import add_exp_arguments
from yolox.utils.errors import run_as_command
from yolox.utils.onnx_inference import parse_size


def make_parser() -> argparse.ArgumentParser:
    """The exporter's command-line flags."""
    parser = argparse.ArgumentParser(description="Export a YOLOX model to TorchScript with torch.jit.trace.")
    parser.add_argument("--output-name", default=None, help="output file (default: <exp_name>.torchscript.pt)")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help="decode boxes inside the model (else the output holds raw offsets per anchor)")
    parser.add_argument("--tsize", type=parse_size, default=None,
                        help="trace input size: 640 or H,W such as 480,640 (default: the exp's test_size)")
    add_exp_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> Path:
    """Load the exp and checkpoint, trace, save, and return the written file."""
    import torch

    from yolox.exp.build import exp_from_args, load_exp_model
    from yolox.utils.export import export_metadata, export_torchscript, prepare_for_export
    from yolox.utils.predictor import input_size

    exp = exp_from_args(args)
    input_hw = input_size(args.tsize, exp.test_size)
    model, class_names = load_exp_model(exp, args.ckpt, torch.device("cpu"))
    model = prepare_for_export(model, args.decode_in_inference)
    metadata = export_metadata(exp, class_names, input_hw, args.decode_in_inference, dynamic_batch=True,
                               dynamic_hw=False, strides=model.head.strides)
    output = Path(args.output_name or f"{exp.exp_name}.torchscript.pt")
    export_torchscript(model, output, input_hw, metadata)
    print(f"wrote {output} (traced at {input_hw[0]}x{input_hw[1]}, "
          f"boxes {'decoded' if args.decode_in_inference else 'raw'})")
    return output


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: export, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_args(argv)
    return run_as_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
