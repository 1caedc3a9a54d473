"""``python tools/convert_dataset.py data.yaml``: write COCO annotation files from a YOLO-format dataset.

Example::

    python tools/convert_dataset.py datasets/my_parts/data.yaml      # -> datasets/my_parts/annotations/*.json

Each split of the data.yaml (train, val, test) becomes ``instances_<split>.json`` whose image file names are
relative to the dataset root, so an exp reads it with ``data_dir <root>``, ``train_ann instances_train.json``
and ``train_name .`` (printed at the end). Training on the YOLO layout directly needs no conversion
(``dataset_format yolo``); the JSON files are for COCO tools and for sharing the annotations.
"""

import argparse
import sys
from pathlib import Path

from yolox.cli.common import command_parser, run_command


def make_parser() -> argparse.ArgumentParser:
    """The converter's command-line flags."""
    parser = command_parser("yolox convert-dataset", "Write COCO JSON annotation files from a YOLO-format dataset "
                                                 "(an ultralytics data.yaml with images/ and labels/).")
    parser.add_argument("data_yaml", help="the dataset's data.yaml (path, train, val, names)")
    parser.add_argument("--out", default=None, help="output folder (default: <dataset root>/annotations)")
    parser.add_argument("--splits", default=None,
                        help="comma-separated splits to convert (default: every one the data.yaml lists)")
    return parser


def convert(args: argparse.Namespace) -> list[Path]:
    """Convert the splits that the flags ask for, print a line per file and the exp keys to use; return the files."""
    from yolox.data.datasets.yolo import read_data_yaml, yolo_split_to_coco
    from yolox.utils.errors import UserError
    from yolox.utils.files import write_json_atomically

    config = read_data_yaml(args.data_yaml)
    splits = [split.strip() for split in args.splits.split(",") if split.strip()] if args.splits else list(config.splits)
    unknown = [split for split in splits if split not in config.splits]
    if unknown:
        raise UserError(f"{config.yaml_path} has no split {', '.join(unknown)}: it lists {', '.join(config.splits)}")
    out_dir = Path(args.out) if args.out else config.root / "annotations"
    written = []
    for split in splits:
        coco = yolo_split_to_coco(config, split)
        target = out_dir / f"instances_{split}.json"
        write_json_atomically(target, coco, indent=None)
        print(f"{split}: {len(coco['images'])} images, {len(coco['annotations'])} boxes, "
              f"{len(coco['categories'])} classes -> {target}")
        written.append(target)
    keys = " ".join(f"{split}_ann instances_{split}.json {split}_name ." for split in splits)  # exp keys per split
    print(f"train on them as COCO data with the exp keys: data_dir {config.root} {keys} num_classes {len(config.names)}")
    return written


def main(argv: list[str] | None = None) -> int:
    """Convert; a user error exits with code 2 after one line."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: convert(args))


if __name__ == "__main__":
    sys.exit(main())
