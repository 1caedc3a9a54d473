"""``make demo``: generate the shapes dataset if missing, train the CAM shapes exp on CPU, evaluate, draw predictions.

Extra ``key value`` pairs are exp overrides, e.g. ``python tools/quickstart.py max_epoch 4``. The dataset and
the run folder are written below the current folder; the exp file is found in the checkout wherever it runs from.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolox.cli.common import USER_ERRORS, command_parser, run_command
from yolox.utils.errors import UserError
from yolox.utils.protocols import ExpLike
from yolox.utils.run_files import trained_checkpoints
from yolox.utils.visualize import tile_images

# The checkout's exps/ folder, beside the yolox package: found from here, not from the current folder.
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
DEMO_EXP = str(CHECKOUT_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
PICTURE_NAME = "demo_predictions.png"


def ensure_shapes_dataset(data_dir: Path, num_train: int, num_val: int, seed: int = 0) -> bool:
    """Generate the shapes dataset unless its annotation files are already there; return True if generated."""
    from yolox.data.shapes import generate_shapes_dataset

    annotations = data_dir / "annotations"
    if (annotations / "instances_train.json").is_file() and (annotations / "instances_val.json").is_file():
        return False
    generate_shapes_dataset(data_dir, num_train=num_train, num_val=num_val, seed=seed)
    return True


def draw_prediction_picture(exp: ExpLike, ckpt: Path, image_paths: Sequence[Path], out_path: Path,
                            device: str = "cpu", conf: float = 0.3, nms: float = 0.45) -> int:
    """Run the trained model on ``image_paths``, draw the boxes, tile them into one picture; return the box count."""
    from yolox.utils.device import resolve_device
    from yolox.utils.predictor import Predictor, load_inference_model

    torch_device = resolve_device(device)
    model, _ = load_inference_model(exp, ckpt, torch_device)
    predictor = Predictor(model, exp.num_classes, exp.test_size, conf=conf, nms=nms,
                          class_names=exp.class_names, device=torch_device)
    drawn: list[np.ndarray] = []
    boxes = 0
    for path in image_paths:
        image = cv2.imread(str(path))
        if image is None:
            raise UserError(f"could not read {path}: regenerate the dataset with tools/make_dataset.py")
        detections, _ = predictor.predict(image)
        boxes += len(detections)
        drawn.append(predictor.draw(image, detections))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), tile_images(drawn, columns=3)):
        raise UserError(f"could not write {out_path}: check that the folder is writable")
    return boxes


def run_quickstart(exp_file: str = DEMO_EXP, batch_size: int = 16, device: str = "cpu", num_train: int = 800,
                   num_val: int = 200, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """Generate the data if missing, train, evaluate the best checkpoint and draw predictions; return a summary."""
    from yolox.cli.eval import RESULTS_FILE
    from yolox.cli.eval import main as eval_main
    from yolox.cli.train import main as train_main
    from yolox.exp import get_exp

    overrides = list(overrides or [])
    exp = get_exp(exp_file, None, overrides)
    data_dir = Path(exp.data_dir)
    started = time.perf_counter()
    generated = ensure_shapes_dataset(data_dir, num_train, num_val, seed=exp.seed or 0)
    run_dir = exp.run_dir
    common = ["-f", exp_file, "-b", str(batch_size), "--device", device]
    code = train_main([*common, "--overwrite", *overrides])
    if code != 0:
        raise RuntimeError(f"training stopped with exit code {code}: see {run_dir / 'train_log.txt'}")
    trained = time.perf_counter()
    checkpoints = trained_checkpoints(run_dir)
    ckpt = checkpoints.get("best", checkpoints.get("last"))  # best when an evaluation wrote one, else the final
    if ckpt is None:
        raise RuntimeError(f"training ended without a checkpoint in {run_dir}: see {run_dir / 'train_log.txt'}")
    code = eval_main([*common, "-c", str(ckpt), *overrides])
    if code != 0:
        raise RuntimeError(f"evaluation stopped with exit code {code}: see {run_dir / 'val_log.txt'}")
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    val_images = sorted((data_dir / exp.val_name).glob("*.jpg"))[:6]
    picture = run_dir / PICTURE_NAME
    boxes = draw_prediction_picture(exp, ckpt, val_images, picture, device=device)
    return {
        "dataset": str(data_dir), "dataset_generated": generated, "checkpoint": str(ckpt),
        "train_log": str(run_dir / "train_log.txt"), "eval_results": str(run_dir / RESULTS_FILE),
        "picture": str(picture), "boxes_in_picture": boxes, "ap50_95": results.get("ap50_95"),
        "ap50": results.get("ap50"), "train_seconds": round(trained - started, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def print_summary(summary: dict[str, Any]) -> None:
    """Print where the quick start's dataset, checkpoint, logs and picture are, and its figures."""
    print("\n=== quick start done ===")
    print(f"dataset:      {summary['dataset']}{' (generated)' if summary['dataset_generated'] else ''}")
    print(f"checkpoint:   {summary['checkpoint']}")
    print(f"training log: {summary['train_log']}")
    print(f"evaluation:   {summary['eval_results']}  AP50:95 {summary['ap50_95']:.3f}  AP50 {summary['ap50']:.3f}")
    print(f"picture:      {summary['picture']} ({summary['boxes_in_picture']} boxes on 6 validation images)")
    print(f"time:         {summary['train_seconds']:.0f} s to train, {summary['total_seconds']:.0f} s in all")


def make_parser() -> argparse.ArgumentParser:
    """The quick start's command-line flags."""
    parser = command_parser("yolox quickstart", "Train and evaluate an attention model on the built-in shapes data.")
    parser.add_argument("-f", "--exp_file", default=DEMO_EXP, help=f"exp file (default: {DEMO_EXP})")
    parser.add_argument("-b", "--batch-size", type=int, default=16, help="training batch size (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("opts", nargs="*", help="exp overrides as key value pairs")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the quick start and print where its results are; a failed training or evaluation exits with code 2."""
    args = make_parser().parse_args(argv)
    return run_command(
        lambda: print_summary(run_quickstart(args.exp_file, args.batch_size, args.device, overrides=args.opts)),
        expected=(*USER_ERRORS, RuntimeError),
    )


if __name__ == "__main__":
    sys.exit(main())
