#!/usr/bin/env python
"""Export a YOLOX checkpoint to ONNX (dynamic batch, optional dynamic H/W) with its metadata.

Example::

    python tools/export_onnx.py -f exps/yolox_s_cam.py -c best_ckpt.pth --output-name yolox_s_cam.onnx --dynamic-hw
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from yolox.utils.errors import UserError
from yolox.utils.onnx_inference import parse_size


def make_parser() -> argparse.ArgumentParser:
    """The exporter's command-line flags."""
    parser = argparse.ArgumentParser(description="Export a YOLOX model to ONNX with torch.onnx.export.")
    parser.add_argument("--output-name", default=None, help="output .onnx file (default: <exp_name>.onnx)")
    parser.add_argument("--input", default="images", help="name of the graph input")
    parser.add_argument("--output", default="output", help="name of the graph output")
    parser.add_argument("-o", "--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--dynamic-hw", action="store_true", help="let the input height and width vary too")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help="decode boxes inside the graph (else the output holds raw offsets per anchor)")
    parser.add_argument("--simplify", action="store_true", help="simplify the graph with onnxsim (must be installed)")
    parser.add_argument("--tsize", type=parse_size, default=None,
                        help="export input size: 640 or H,W such as 480,640 (default: the exp's test_size)")
    parser.add_argument("-expn", "--experiment-name", default=None, help="override the exp name")
    parser.add_argument("-n", "--name", default=None, help="default exp name, e.g. yolox-s")
    parser.add_argument("-f", "--exp_file", default=None, help="exp file describing the model")
    parser.add_argument("-c", "--ckpt", default=None,
                        help="checkpoint (default: <output_dir>/<exp_name>/best_ckpt.pth)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="exp overrides as 'key value' pairs")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Load the exp and checkpoint, export, and return the written file."""
    import torch

    from yolox.data.datasets import COCO_CLASSES
    from yolox.exp import get_exp
    from yolox.utils.export import export_metadata, export_onnx, prepare_for_export
    from yolox.utils.predictor import input_size, load_inference_model, resolve_class_names

    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if args.experiment_name:
        exp.exp_name = args.experiment_name
    input_hw = input_size(args.tsize, exp.test_size)
    ckpt = Path(args.ckpt) if args.ckpt else Path(exp.output_dir) / exp.exp_name / "best_ckpt.pth"
    model, meta = load_inference_model(exp, ckpt, torch.device("cpu"))
    class_names = resolve_class_names(meta, exp.resolved_class_names(), exp.num_classes, COCO_CLASSES)
    model = prepare_for_export(model, args.decode_in_inference)
    metadata = export_metadata(exp, class_names, input_hw, args.decode_in_inference, dynamic_batch=True,
                               dynamic_hw=args.dynamic_hw, strides=model.head.strides)
    output = Path(args.output_name or f"{exp.exp_name}.onnx")
    export_onnx(model, output, input_hw, metadata, opset=args.opset, dynamic_batch=True,
                dynamic_hw=args.dynamic_hw, input_name=args.input, output_name=args.output,
                simplify=args.simplify)
    print(f"wrote {output} (opset {args.opset}, input {input_hw[0]}x{input_hw[1]}, dynamic batch"
          f"{', dynamic H/W' if args.dynamic_hw else ''}, boxes {'decoded' if args.decode_in_inference else 'raw'})")
    return output


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: export, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_args(argv)
    try:
        run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
