#!/usr/bin/env python
"""Benchmarks of yolox-attention: each subcommand prints a table and writes a JSON report.

    python tools/benchmark.py data -n yolox-s --size 640 --workers 0,2

Add a subcommand by writing ``add_<name>_arguments(parser)`` and ``run_<name>(args) -> BenchmarkReport``
and registering them with ``@subcommand("<name>", "<help>")``; the measuring belongs in the library.
"""

import argparse
import os
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import torch

from yolox.utils.benchmark import BenchmarkReport
from yolox.utils.errors import UserError

Runner = Callable[[argparse.Namespace], BenchmarkReport]
SUBCOMMANDS: Dict[str, Tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {}


def subcommand(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]
               ) -> Callable[[Runner], Runner]:
    """Register ``run`` as the benchmark ``name`` whose own flags ``add_arguments`` declares."""
    def register(run: Runner) -> Runner:
        SUBCOMMANDS[name] = (help_text, add_arguments, run)
        return run
    return register


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark shares: which exp, repetitions, threads and where the JSON goes."""
    parser.add_argument("-f", "--exp-file", default=None, help="exp file (default: the exp named by -n)")
    parser.add_argument("-n", "--name", default="yolox-s", help="default exp name when no -f is given")
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the exp's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up repetitions")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: unchanged)")
    parser.add_argument("--json", default=None, help="JSON report path (default: ./benchmark_<name>.json)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="exp overrides as key value pairs")


def load_exp(args: argparse.Namespace):
    """The exp of ``-f``/``-n`` with the command-line overrides and ``--size`` applied."""
    from yolox.exp import get_exp

    exp = get_exp(args.exp_file, None if args.exp_file else args.name)
    if args.opts:
        exp.merge(args.opts)
    if args.size:
        exp.input_size = (args.size, args.size)
    return exp


def parse_workers(text: str, default_max: int) -> List[int]:
    """``"0,2"`` -> [0, 2]; ``"0,N"`` uses the exp's worker count limited to the CPU count."""
    counts = []
    for word in text.split(","):
        word = word.strip()
        if word.upper() == "N":
            counts.append(default_max)
        elif word.isdigit():
            counts.append(int(word))
        else:
            raise UserError(f"--workers {text!r}: give comma-separated worker counts such as 0,2 (N = the exp's)")
    return counts


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the data pipeline benchmark."""
    parser.add_argument("--data-dir", default=None,
                        help="COCO-format folder (annotations/ + images); default: a generated temporary set")
    parser.add_argument("--workers", default="0,N", help="worker counts to measure, e.g. 0,2 (N: the exp's, "
                                                         "at most the CPU count)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("--batches", type=int, default=8, help="batches per timed repetition")
    parser.add_argument("--images", type=int, default=64, help="images in the generated set")


@subcommand("data", "images/s of the training pipeline (mosaic + mixup) for 0 and N loader workers",
            add_data_arguments)
def run_data(args: argparse.Namespace) -> BenchmarkReport:
    """Measure the training loader of the exp on ``--data-dir`` or on a generated COCO-like set."""
    from yolox.data.benchmark import benchmark_data_pipeline, write_synthetic_coco

    exp = load_exp(args)
    workers = parse_workers(args.workers, min(exp.data_num_workers, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="yolox_bench_data_") as scratch:
        if args.data_dir:
            exp.data_dir = args.data_dir
            source = args.data_dir
        else:
            exp.data_dir = str(write_synthetic_coco(scratch, num_images=args.images, num_classes=exp.num_classes))
            exp.train_ann, exp.train_name = "instances_train2017.json", "train2017"
            source = f"generated: {args.images} JPEGs of 640x480"
        return benchmark_data_pipeline(exp, workers, batch_size=args.batch_size, batches=args.batches,
                                       repeats=args.repeats, warmup=args.warmup,
                                       settings={"exp": getattr(exp, "exp_name", args.name), "images": source})


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-parser per registered benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (help_text, add_arguments, _) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        add_common_arguments(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the chosen benchmark, print its table and write its JSON report."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    try:
        report = SUBCOMMANDS[args.command][2](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"benchmark {report.name}: " + ", ".join(f"{key}={value}" for key, value in report.settings.items()))
    print(report.table())
    path = report.write_json(args.json)
    print(f"threads: torch {report.env['torch_threads']}, OpenCV {report.env.get('opencv_threads')}; "
          f"device {report.env['device']}; report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
