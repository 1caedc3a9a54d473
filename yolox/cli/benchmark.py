"""Benchmarks of yolox-attention: each subcommand prints a table and writes a JSON report.

    python tools/benchmark.py latency -n yolox-s --attention all --threads 2
    python tools/benchmark.py train-step -n yolox-nano --tsize 416 --batch-size 8 --threads 2
    python tools/benchmark.py data -n yolox-s --tsize 640 --workers 0,2
    python tools/benchmark.py eval --threads 2
    python tools/benchmark.py study-throughput -n yolox-nano --variants none,cam,se --tsize 416 -b 8
    python tools/benchmark.py train-step-vs-official -n yolox-nano --tsize 416 -b 8 --threads 2
    python tools/benchmark.py all --threads 2

Add a subcommand by writing ``add_<name>_arguments(parser)`` and ``run_<name>(args) -> BenchmarkReport``
and registering them with ``@subcommand("<name>", "<help>")``; the measuring belongs in the library.
"""

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import torch

from yolox.benchmarks.report import BenchmarkReport
from yolox.cli.common import (
    DefaultsHelpFormatter,
    add_exp_arguments,
    add_tsize_argument,
    check_output_file,
    check_output_folder,
    command_parser,
    exp_from_args,
    non_negative_int,
    positive_int,
    run_command,
    tsize_from_args,
)
from yolox.utils.errors import UserError
from yolox.utils.protocols import BenchmarkExpLike

Runner = Callable[[argparse.Namespace], BenchmarkReport]
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {}


def subcommand(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]
               ) -> Callable[[Runner], Runner]:
    """Register ``run`` as the benchmark ``name`` whose own flags ``add_arguments`` declares."""
    def register(run: Runner) -> Runner:
        SUBCOMMANDS[name] = (help_text, add_arguments, run)
        return run
    return register


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark shares: which exp and size, repetitions, threads and where the JSON goes."""
    add_tsize_argument(parser, default_text="the exp's input_size for training, test_size otherwise")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repetitions after warm-up")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed warm-up repetitions")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch and OpenCV threads (default: unchanged)")
    parser.add_argument("--json", default=None, help="JSON report path (default: ./benchmark_<name>.json)")
    # The models are measured with their initial weights, so there is no -c.
    add_exp_arguments(parser, ckpt_help=None, default_name="yolox-s")


def load_exp(args: argparse.Namespace) -> BenchmarkExpLike:
    """The exp of ``-f``/``-n`` with the overrides applied and ``--tsize`` as its training and test size."""
    exp = exp_from_args(args)
    if args.tsize is not None:
        exp.input_size = exp.test_size = tsize_from_args(args, exp.test_size)
    return exp


def parse_workers(text: str, default_max: int) -> list[int]:
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
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per batch")
    parser.add_argument("--batches", type=positive_int, default=8, help="batches per timed repetition")
    parser.add_argument("--images", type=int, default=64, help="images in the generated set")


@subcommand("data", "images/s of the training pipeline (mosaic + mixup) for 0 and N loader workers",
            add_data_arguments)
def run_data(args: argparse.Namespace) -> BenchmarkReport:
    """Measure the training loader of the exp on ``--data-dir`` or on a generated COCO-like set."""
    from yolox.benchmarks.data import benchmark_data_pipeline, write_synthetic_coco

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


def parse_attentions(text: str) -> list[str | None]:
    """``"all"`` -> none plus every registered block; ``"none,cbam"`` -> [None, "cbam"]."""
    from yolox.models import available_attentions

    known = available_attentions()
    if text.strip().lower() == "all":
        return [None] + known
    attentions: list[str | None] = []
    for word in text.split(","):
        word = word.strip().lower()
        if word not in ["none"] + known:
            raise UserError(f"--attention {text!r}: {word!r} is unknown; use all, none or a comma list of "
                            f"{', '.join(known)}")
        attentions.append(None if word == "none" else word)
    return attentions


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the model benchmarks."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--channels-last", action="store_true", help="run the model in channels-last memory format")


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the inference latency benchmark."""
    add_model_arguments(parser)
    parser.add_argument("--attention", default="none",
                        help="none, all (none + every registered block, with the overhead ratio) or a comma list")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="images per forward")
    parser.add_argument("--no-postprocess", action="store_true", help="time the forward only, without NMS")
    parser.add_argument("--fuse", action="store_true", help="fold BatchNorm into the convolutions first")
    parser.set_defaults(repeats=10, warmup=3)


@subcommand("latency", "eval-mode forward + postprocess latency, optionally for every attention type",
            add_latency_arguments)
def run_latency(args: argparse.Namespace) -> BenchmarkReport:
    """Measure inference latency of the exp's model (and its attention variants)."""
    from yolox.benchmarks.model import measure_latency
    from yolox.utils.device import resolve_device

    exp = load_exp(args)
    return measure_latency(exp, parse_attentions(args.attention), batch_size=args.batch_size,
                           repeats=args.repeats, warmup=args.warmup, device=str(resolve_device(args.device)),
                           with_postprocess=not args.no_postprocess, channels_last=args.channels_last,
                           fuse=args.fuse)


def parse_box_range(text: str) -> tuple[int, int]:
    """``"10,30"`` -> (10, 30)."""
    words = text.split(",")
    if len(words) != 2 or not all(word.strip().isdigit() for word in words):
        raise UserError(f"--boxes {text!r}: give the smallest and largest box count per image, e.g. 10,30")
    return int(words[0]), int(words[1])


def add_train_step_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the training step benchmark."""
    add_model_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per step")
    parser.add_argument("--boxes", default="10,30", help="range of boxes per synthetic image, e.g. 10,30")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc malloc as it is (by default big freed buffers stay mapped, as in training)")
    parser.set_defaults(repeats=5, warmup=2)


@subcommand("train-step", "forward + SimOTA + backward + optimizer step time, page faults and peak memory",
            add_train_step_arguments)
def run_train_step(args: argparse.Namespace) -> BenchmarkReport:
    """Measure one training step of the exp's model on a fixed synthetic batch."""
    from yolox.benchmarks.model import measure_train_step
    from yolox.utils.device import resolve_device
    from yolox.utils.setup_env import configure_allocator

    exp = load_exp(args)
    allocator_tuned = False if args.default_allocator else configure_allocator()
    report = measure_train_step(exp, batch_size=args.batch_size, repeats=args.repeats,
                                warmup=args.warmup, device=str(resolve_device(args.device)),
                                boxes_per_image=parse_box_range(args.boxes), channels_last=args.channels_last)
    report.settings["allocator tuned"] = allocator_tuned
    return report


def add_train_step_vs_official_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the side-by-side training step benchmark."""
    parser.add_argument("--official-python", default=".venv-official/bin/python",
                        help="interpreter of a venv holding the official yolox==0.3.0; the default is the one "
                             "`make official-venv` builds")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=8, help="images per step")
    parser.add_argument("--steps-per-turn", type=positive_int, default=2, help="steps one side runs per turn")
    parser.add_argument("--boxes", default="10,30", help="range of boxes per synthetic image, e.g. 10,30")
    parser.add_argument("--tuned-allocator", action="store_true",
                        help="both sides keep big freed buffers mapped, as tools/train.py does (glibc tunables)")
    parser.set_defaults(name="yolox-nano", repeats=10, warmup=2)


@subcommand("train-step-vs-official", "this project's train step phases side by side with the official YOLOX's",
            add_train_step_vs_official_arguments)
def run_train_step_vs_official(args: argparse.Namespace) -> BenchmarkReport:
    """Time both codes' forward, backward and optimizer step in turns, on the same batch and weights."""
    from yolox.benchmarks.official import measure_against_official

    if args.exp_file:
        raise UserError("train-step-vs-official compares the official models: give -n (e.g. -n yolox-nano), not -f")
    exp = load_exp(args)
    if args.tuned_allocator:
        from yolox.utils.setup_env import KEEP_FREED_BYTES

        # The settings configure_allocator makes with mallopt, given to the workers before they start.
        os.environ["GLIBC_TUNABLES"] = f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={KEEP_FREED_BYTES}"
    with tempfile.TemporaryDirectory(prefix="yolox_bench_official_") as scratch:
        report = measure_against_official(args.official_python, args.name, tuple(exp.input_size), args.batch_size,
                                          exp.num_classes, args.threads or torch.get_num_threads(), args.repeats,
                                          args.steps_per_turn, args.warmup, Path(scratch), device=args.device,
                                          boxes_per_image=parse_box_range(args.boxes), overrides=args.opts)
    report.settings["allocator"] = "tuned (both)" if args.tuned_allocator else "glibc default (both)"
    return report


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the COCO evaluation benchmark."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--images", type=int, default=80, help="images in the generated shapes evaluation set")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per inference batch")
    parser.add_argument("--test-conf", type=float, default=0.001, help="score threshold (low: many detections)")
    parser.set_defaults(name="yolox-nano", tsize=(416, 416), repeats=3, warmup=1)


@subcommand("eval", "COCO evaluation (inference + conversion + scoring) on a generated shapes set",
            add_eval_arguments)
def run_eval(args: argparse.Namespace) -> BenchmarkReport:
    """Measure a whole COCOEvaluator run of the exp's model over a generated COCO-format set."""
    from yolox.benchmarks.model import measure_eval
    from yolox.data.shapes import SHAPE_CLASSES, generate_shapes_dataset
    from yolox.utils.device import resolve_device

    exp = load_exp(args)
    exp.test_conf = args.test_conf
    exp.data_num_workers = 0
    with tempfile.TemporaryDirectory(prefix="yolox_bench_eval_") as scratch:
        exp.data_dir = str(generate_shapes_dataset(scratch, num_train=0, num_val=args.images,
                                                   img_size=tuple(exp.test_size)))
        exp.val_ann, exp.val_name = "instances_val.json", "val"
        exp.num_classes, exp.class_names = len(SHAPE_CLASSES), SHAPE_CLASSES
        report = measure_eval(exp, repeats=args.repeats, warmup=args.warmup, batch_size=args.batch_size,
                              device=str(resolve_device(args.device)))
    report.settings["images"] = f"generated shapes: {args.images} images of {exp.test_size[0]}x{exp.test_size[1]}"
    return report


def add_gpu_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the GPU benchmark."""
    parser.add_argument("--models", default="yolox-s,yolox-nano", help="comma list of exp names to measure")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N (cpu only for a smoke run at a small --tsize)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="training images per step (evaluation: --eval-batches)")
    parser.add_argument("--eval-batches", default="1,64", help="evaluation batch sizes, e.g. 1,64")
    parser.add_argument("--workers", type=int, default=None, help="loader workers end to end (default: all CPU cores)")
    parser.add_argument("--images", type=int, default=128, help="generated JPEGs for the end-to-end runs")
    parser.add_argument("--no-switches", action="store_true", help="skip measuring each speed switch on/off")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense fp16/bf16 peak (default: from a table of known GPUs)")
    parser.add_argument("--check", action="store_true",
                        help="first run the CUDA tests (pytest -m cuda); stop with an error when one fails")
    parser.set_defaults(repeats=20, warmup=5)


@subcommand("gpu", "CUDA training images/s (model-bound, end to end), eval ms/image, attention overhead, switches",
            add_gpu_arguments)
def run_gpu(args: argparse.Namespace) -> BenchmarkReport:
    """Measure every GPU figure in one report; ``--check`` runs the CUDA tests first."""
    from yolox.benchmarks.gpu import cuda_device, run_cuda_tests, run_gpu_benchmark
    from yolox.exp import get_exp

    device = torch.device(args.device) if args.device == "cpu" else cuda_device()
    if args.check:
        code = run_cuda_tests()
        if code != 0:
            raise UserError(f"the CUDA tests failed (pytest exit code {code}, see above): fix them, or run "
                            "'tools/benchmark.py gpu' without --check for the figures alone")
    exps = {}
    for name in [word.strip() for word in args.models.split(",") if word.strip()]:
        exp = get_exp(None, name)
        if args.opts:
            exp.merge(args.opts)
        exps[name] = exp
    eval_batches = tuple(int(word) for word in args.eval_batches.split(",") if word.strip())
    return run_gpu_benchmark(exps, device, batch_size=args.batch_size, size=tsize_from_args(args, (640, 640))[0], steps=args.repeats,
                             warmup=args.warmup, eval_batches=eval_batches, workers=args.workers, images=args.images,
                             switches=not args.no_switches, peak_override=args.peak_tflops)


def add_study_throughput_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the study throughput benchmark."""
    parser.add_argument("--variants", default="none,cam,se", help="comma list of attention names (none: off)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("-b", "--batch-size", type=int, default=8, help="images per iteration")
    parser.add_argument("--workers", default="0,2", help="loader worker counts to measure, e.g. 0,2")
    parser.add_argument("--iterations", type=int, default=6, help="timed iterations of each training")
    parser.set_defaults(name="yolox-nano", repeats=3, warmup=2)


@subcommand("study-throughput", "s/iteration of V variants trained one by one vs in lockstep from one data stream",
            add_study_throughput_arguments)
def run_study_throughput(args: argparse.Namespace) -> BenchmarkReport:
    """Train each variant alone and all of them in lockstep on a generated set, taking turns, and compare."""
    from pathlib import Path

    from yolox.benchmarks.data import SYNTHETIC_ANN, SYNTHETIC_NAME, write_synthetic_coco
    from yolox.benchmarks.study import measure_study_throughput
    from yolox.utils.device import resolve_device

    exp = load_exp(args)
    variants = parse_attentions(args.variants)
    if args.iterations < 1 or args.batch_size < 1:
        raise UserError("--iterations and --batch-size must be at least 1")
    # A fixed size and seed, no logging between the timed iterations, and an epoch longer than the measurement.
    exp.multiscale_range, exp.random_size, exp.seed, exp.print_interval = 0, None, 0, 10**6
    exp.train_ann = exp.val_ann = SYNTHETIC_ANN
    exp.train_name = exp.val_name = SYNTHETIC_NAME
    images = args.batch_size * (args.warmup + args.iterations + 2)
    with tempfile.TemporaryDirectory(prefix="yolox_bench_study_") as scratch:
        data_dir = write_synthetic_coco(Path(scratch) / "data", num_images=images, num_classes=exp.num_classes)
        report = measure_study_throughput(exp, variants, data_dir, Path(scratch), batch_size=args.batch_size,
                                          workers=parse_workers(args.workers, os.cpu_count() or 1),
                                          iterations=args.iterations, warmup=args.warmup, repeats=args.repeats,
                                          device=str(resolve_device(args.device)))
    report.settings["images"] = f"generated: {images} JPEGs of 640x480"
    return report


# What ``all`` runs: every benchmark at the settings of the reference table, one JSON report each.
ALL_RUNS = (
    ("latency", ["-n", "yolox-s", "--attention", "all"]),
    ("train-step", ["-n", "yolox-s", "--tsize", "640", "--batch-size", "4"]),
    ("train-step", ["-n", "yolox-nano", "--tsize", "416", "--batch-size", "8"]),
    ("data", ["-n", "yolox-s", "--tsize", "640", "--workers", "0"]),
    ("eval", []),
)


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``all``: threads, repeats and warm-up go to every benchmark, the device to the model benchmarks."""
    parser.add_argument("--json-dir", default=".", help="folder for the JSON reports (benchmark_<name>_<n>.json)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto, for the model benchmarks")
    parser.set_defaults(repeats=None, warmup=None)


@subcommand("all", "run every benchmark at the reference settings and summarise them", add_all_arguments)
def run_all(args: argparse.Namespace) -> BenchmarkReport:
    """Run ``ALL_RUNS`` one after the other, print each table, and return one headline row per run."""
    from yolox.benchmarks.report import environment
    from yolox.utils.device import resolve_device

    device = str(resolve_device(args.device))
    passed_on = []
    for flag, value in (("--threads", args.threads), ("--repeats", args.repeats), ("--warmup", args.warmup)):
        if value is not None:  # given on the command line; otherwise each benchmark keeps its own default
            passed_on += [flag, str(value)]
    rows = []
    for index, (name, flags) in enumerate(ALL_RUNS):
        on_device = [] if name == "data" else ["--device", device]  # the data pipeline runs on the CPU
        sub_args = build_parser().parse_args([name, *flags, *on_device, *passed_on])
        report = SUBCOMMANDS[name][2](sub_args)
        path = report.write_json(os.path.join(args.json_dir, f"benchmark_{name.replace('-', '_')}_{index}.json"))
        print(f"\nbenchmark {report.name}: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()))
        print(report.table())
        print(f"report written to {path}")
        rows.extend({"benchmark": name, "settings": " ".join(flags), **headline(row)} for row in report.rows)
    return BenchmarkReport("all", rows, {"runs": len(ALL_RUNS)}, environment(device))


def headline(row: dict[str, object]) -> dict[str, object]:
    """The median (and the row's label) of a benchmark row, whatever its unit."""
    label = next((str(row[key]) for key in ("attention", "workers", "model") if key in row), "")
    median_key = next((key for key in row if str(key).startswith("median")), "images/s")
    return {"row": label, "median": row.get(median_key, ""), "unit": str(median_key).replace("median", "").strip()}


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-parser per registered benchmark."""
    parser = command_parser("yolox benchmark", __doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (help_text, add_arguments, _) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=DefaultsHelpFormatter,
                                  allow_abbrev=False)
        add_common_arguments(sub)
        add_arguments(sub)  # after the shared flags, so that its set_defaults (e.g. -n for eval) win
    return parser


def run_and_report(args: argparse.Namespace) -> None:
    """Run the chosen benchmark, print its table and write its JSON report (its path checked before measuring)."""
    check_output_file(Path(args.json or f"benchmark_{args.command.replace('-', '_')}.json"), "--json")
    if args.command == "all":
        check_output_folder(Path(args.json_dir), "--json-dir")
    report = SUBCOMMANDS[args.command][2](args)
    print(f"benchmark {report.name}: " + ", ".join(f"{key}={value}" for key, value in report.settings.items()))
    print(report.table())
    path = report.write_json(args.json)
    print(f"threads: torch {report.env['torch_threads']}, OpenCV {report.env.get('opencv_threads')}; "
          f"device {report.env['device']}; report written to {path}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmark; a mistake in the flags or the exp is one ``error:`` line and exit code 2."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    return run_command(lambda: run_and_report(args))


if __name__ == "__main__":
    sys.exit(main())
