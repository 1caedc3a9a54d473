#!/usr/bin/env python
"""``make demo``: generate the shapes dataset if missing, train the CAM shapes exp on CPU, evaluate, draw predictions.

Extra ``key value`` pairs are exp overrides, e.g. ``python tools/quickstart.py max_epoch 4``.
"""

import argparse
import sys
from pathlib import Path

# Running from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolox.quickstart import DEMO_EXP, run_quickstart  # noqa: E402
from yolox.utils.errors import UserError, run_as_command  # noqa: E402


def print_summary(summary: dict) -> None:
    """Print where the quick start's dataset, checkpoint, logs and picture are, and its figures."""
    print("\n=== quick start done ===")
    print(f"dataset:      {summary['dataset']}{' (generated)' if summary['dataset_generated'] else ''}")
    print(f"checkpoint:   {summary['checkpoint']}")
    print(f"training log: {summary['train_log']}")
    print(f"evaluation:   {summary['eval_results']}  AP50:95 {summary['ap50_95']:.3f}  AP50 {summary['ap50']:.3f}")
    print(f"picture:      {summary['picture']} ({summary['boxes_in_picture']} boxes on 6 validation images)")
    print(f"time:         {summary['train_seconds']:.0f} s to train, {summary['total_seconds']:.0f} s in all")


def main(argv: list | None = None) -> int:
    """Run the quick start and print where its results are."""
    parser = argparse.ArgumentParser(description="Train and evaluate an attention model on the built-in shapes data.")
    parser.add_argument("-f", "--exp_file", default=DEMO_EXP, help=f"exp file (default: {DEMO_EXP})")
    parser.add_argument("-b", "--batch-size", type=int, default=16, help="training batch size (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("opts", nargs="*", help="exp overrides as key value pairs")
    args = parser.parse_args(argv)
    return run_as_command(
        lambda: print_summary(run_quickstart(args.exp_file, args.batch_size, args.device, overrides=args.opts)),
        expected=(UserError, FileNotFoundError, RuntimeError),
    )


if __name__ == "__main__":
    sys.exit(main())
