"""Run a YOLOX checkpoint on images, a video or a webcam; print detections and optionally save drawn results.

Examples::

    python tools/demo.py image -n yolox-s -c yolox_s.pth --path assets/ --save_result
    python tools/demo.py video -f exps/yolox_s_cbam.py -c best_ckpt.pth --path clip.mp4 --save_result
"""

import argparse
import sys
import time
from pathlib import Path

from yolox.cli.common import (
    add_exp_arguments,
    add_tsize_argument,
    command_parser,
    exp_from_args,
    load_exp_model,
    run_command,
    tsize_from_args,
)
from yolox.utils.errors import UserError


def make_parser() -> argparse.ArgumentParser:
    """The demo's command-line flags."""
    parser = command_parser("yolox demo", "YOLOX demo: detect objects in images, a video or a webcam.")
    parser.add_argument("demo", choices=("image", "video", "webcam"), help="what to run on")
    parser.add_argument("--path", default=None, help="image file or folder (searched recursively), or video file")
    parser.add_argument("--camid", type=int, default=0, help="webcam index")
    parser.add_argument("--save_result", action="store_true",
                        help="write drawn images / an mp4 to <output_dir>/<exp_name>/vis_res/<timestamp>/")
    parser.add_argument("--show", action="store_true", help="show video frames in a window (webcam always shows)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold (objectness x class score)")
    parser.add_argument("--nms", type=float, default=0.3, help="NMS IoU threshold")
    add_tsize_argument(parser)
    parser.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    parser.add_argument("--fuse", action="store_true", help="fuse conv and BN layers before inference")
    parser.add_argument("--class-aware", action="store_true",
                        help="NMS per class (default: class-agnostic, as the official demo)")
    parser.add_argument("--verbose", action="store_true", help="print every box, not only one line per image")
    # "*" with parse_intermixed_args: a REMAINDER after the "demo" positional would swallow every flag.
    add_exp_arguments(parser, overrides_nargs="*")
    return parser


def run(args: argparse.Namespace) -> None:
    """Build the predictor from the exp and checkpoint, then run it on the chosen source."""
    from yolox.utils.device import resolve_device
    from yolox.utils.onnx_inference import find_images
    from yolox.utils.predictor import Predictor, open_video, predict_images, predict_video

    exp = exp_from_args(args)
    input_hw = tsize_from_args(args, exp.test_size)
    if args.demo in ("image", "video") and not args.path:
        raise UserError(f"the {args.demo} demo needs --path")
    # Check the input before spending time on the model.
    images = find_images(Path(args.path)) if args.demo == "image" else []
    if args.demo == "video":
        open_video(Path(args.path)).release()
    device = resolve_device(args.device)
    model, class_names = load_exp_model(exp, args.ckpt, device, fuse=args.fuse)
    predictor = Predictor(model, exp.num_classes, input_hw, args.conf, args.nms, class_names, device,
                          fp16=args.fp16, class_agnostic=not args.class_aware)
    save_dir = exp.run_dir / "vis_res" / time.strftime("%Y_%m_%d_%H_%M_%S") if args.save_result else None
    if args.demo == "image":
        predict_images(predictor, images, Path(args.path), save_dir, args.verbose)
    elif args.demo == "video":
        save_path = save_dir / f"{Path(args.path).stem}.mp4" if save_dir else None
        predict_video(predictor, Path(args.path), save_path, show=args.show, verbose=args.verbose)
    else:
        save_path = save_dir / f"camera{args.camid}.mp4" if save_dir else None
        predict_video(predictor, args.camid, save_path, show=True, verbose=args.verbose)
    if save_dir is not None:
        print(f"results saved in {save_dir}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the demo, print user errors in one line and return exit code 2 for them."""
    args = make_parser().parse_intermixed_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
