"""Generate the built-in synthetic shapes dataset (COCO or YOLO format) for the quick start and the tests."""

import argparse
import sys
import time
from pathlib import Path

from yolox.cli.common import USER_ERRORS, command_parser, run_command
from yolox.data.shapes import LAYOUTS, SHAPE_CLASSES, generate_shapes_dataset


def make_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of this tool."""
    parser = command_parser("yolox make-dataset", f"Write a synthetic dataset of {', '.join(SHAPE_CLASSES)}.")
    parser.add_argument("--out", default="datasets/shapes", help="output folder (default: datasets/shapes)")
    parser.add_argument("--train", type=int, default=800, help="number of training images (default: 800)")
    parser.add_argument("--val", type=int, default=200, help="number of validation images (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    parser.add_argument("--format", choices=LAYOUTS, default="coco",
                        help="coco (annotations/*.json) or yolo (data.yaml, images/, labels/) (default: coco)")
    return parser


def generate_and_report(args: argparse.Namespace) -> None:
    """Write the dataset the flags describe and print where it is and how long it took."""
    start = time.perf_counter()
    root = generate_shapes_dataset(Path(args.out), args.train, args.val, args.size, args.seed, layout=args.format)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.train} train and {args.val} val images to {root} in {elapsed:.1f} s")
    if args.format == "yolo":
        print(f"data.yaml: {root / 'data.yaml'} (labels in {root / 'labels'})")
    else:
        print(f"annotations: {root / 'annotations' / 'instances_train.json'}, {root / 'annotations' / 'instances_val.json'}")


def main(argv: list[str] | None = None) -> int:
    """Generate the dataset and print where it is."""
    args = make_parser().parse_args(argv)
    # generate_shapes_dataset reports a bad count or size as ValueError (an unwritable folder is in USER_ERRORS).
    return run_command(lambda: generate_and_report(args), expected=(*USER_ERRORS, ValueError))


if __name__ == "__main__":
    sys.exit(main())
