"""Export a YOLOX checkpoint to ONNX (dynamic batch, optional dynamic H/W) with its metadata.

Example::

    python tools/export_onnx.py -f exps/yolox_s_cam.py -c best_ckpt.pth --output-name yolox_s_cam.onnx --dynamic-hw
"""

import argparse
import sys
from pathlib import Path

from yolox.cli.common import UserError, add_export_arguments, command_parser, load_model_for_export, run_command


def make_parser() -> argparse.ArgumentParser:
    """The exporter's command-line flags (the official ones, plus ``--dynamic-hw`` and ``--simplify``)."""
    parser = command_parser("yolox export-onnx", "Export a YOLOX model to ONNX with torch.onnx.export.")
    parser.add_argument("--output-name", default=None, help="output .onnx file (default: <exp_name>.onnx)")
    parser.add_argument("--input", default="images", help="name of the graph input")
    parser.add_argument("--output", default="output", help="name of the graph output")
    parser.add_argument("-o", "--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--dynamic", action="store_true",
                        help="dynamic batch axis, as in the official YOLOX (here also the default unless "
                             "--batch-size is given, which then fixes the batch)")
    parser.add_argument("--dynamic-hw", action="store_true", help="let the input height and width vary too")
    parser.add_argument("--simplify", action="store_true",
                        help="simplify the graph with onnxsim (the onnxsim extra: pip install 'yolox-attention[onnxsim]')")
    parser.add_argument("--no-onnxsim", action="store_true",
                        help="do not simplify: the official YOLOX simplifies by default, here that is already the "
                             "default (--simplify turns it on)")
    add_export_arguments(parser, "graph")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Load the exp and checkpoint, export, and return the written file."""
    from yolox.utils.export import export_onnx

    if args.simplify and args.no_onnxsim:
        raise UserError("--simplify and --no-onnxsim contradict each other: keep one")
    # As in the official YOLOX, a batch size without --dynamic fixes the batch axis; with neither it stays dynamic.
    dynamic_batch = args.dynamic or args.batch_size is None
    exp, model, input_hw, metadata = load_model_for_export(args, args.dynamic_hw, dynamic_batch)
    output = Path(args.output_name or f"{exp.exp_name}.onnx")
    export_onnx(model, output, input_hw, metadata, opset=args.opset, dynamic_batch=dynamic_batch,
                dynamic_hw=args.dynamic_hw, input_name=args.input, output_name=args.output,
                simplify=args.simplify, batch_size=args.batch_size or 1)
    batch = "dynamic batch" if dynamic_batch else f"batch {args.batch_size}"
    print(f"wrote {output} (opset {args.opset}, input {input_hw[0]}x{input_hw[1]}, {batch}"
          f"{', dynamic H/W' if args.dynamic_hw else ''}, boxes {'decoded' if args.decode_in_inference else 'raw'})")
    return output


def main(argv: list[str] | None = None) -> int:
    """Entry point: export, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
