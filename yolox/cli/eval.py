"""``python tools/eval.py``: evaluate with the official YOLOX flags plus ``--device``, one or many processes.

Examples::

    python tools/eval.py -n yolox-s -c yolox_s.pth -b 8 --conf 0.001
    python tools/eval.py -f exps/yolox_s_cam.py -c best_ckpt.pth -d 2 --device cpu
    python tools/eval.py -n yolox-nano --speed --tsize 416 --device cpu data_dir datasets/shapes

Writes ``eval_results.json`` and ``val_log.txt`` to ``<output_dir>/<exp_name>/``.
"""

import argparse
import sys
from pathlib import Path

from yolox.cli.common import (
    EXIT_USER_ERROR,
    USER_ERRORS,
    add_distributed_arguments,
    add_exp_arguments,
    add_tsize_argument,
    command_parser,
    distributed_backend,
    exp_from_args,
    positive_int,
    report_error,
    run_command,
    tsize_from_args,
)
from yolox.utils.errors import UserError
from yolox.utils.files import atomic_path, write_json_atomically
from yolox.utils.protocols import ExpLike

RESULTS_FILE = "eval_results.json"
LOG_FILE = "val_log.txt"


def make_parser() -> argparse.ArgumentParser:
    """The evaluation tool's command-line flags (the official YOLOX names, plus --device)."""
    parser = command_parser("yolox eval", "YOLOX evaluation")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=64, help="total batch size over all processes")
    add_distributed_arguments(parser, 1, "number of processes (one per GPU, or CPU with gloo)")
    parser.add_argument("--conf", type=float, default=None, help="score threshold (default: the exp's test_conf)")
    parser.add_argument("--nms", type=float, default=None, help="NMS IoU threshold (default: the exp's nmsthre)")
    add_tsize_argument(parser)
    parser.add_argument("--seed", type=int, default=None, help="seed for a deterministic evaluation")
    parser.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    parser.add_argument("--legacy", action="store_true", help="the old normalised input of YOLOX before 0.2")
    parser.add_argument("--fuse", action="store_true", help="fuse conv and BN layers before evaluating")
    parser.add_argument("--test", action="store_true", help="test-dev: write the detections JSON, no scoring")
    parser.add_argument("--speed", action="store_true", help="timing only: random weights, no checkpoint, no scoring")
    parser.add_argument("--save-detections", default=None, metavar="FILE.npz",
                        help="also write the scored detections (the COCO results array and the annotation file it "
                             "was scored against) to FILE.npz, compressed; COCO-format data only")
    parser.add_argument("--coco-backend", default="pycocotools", choices=("pycocotools", "faster-coco-eval"),
                        help="COCO scoring: pycocotools (reference) or faster-coco-eval (optional extra, same numbers)")
    parser.add_argument("--plots", action="store_true",
                        help="also write PR curves and a confusion matrix (PNG with matplotlib, numbers as JSON) "
                             "to <output_dir>/<exp_name>/eval_plots/")
    parser.add_argument("--plots-conf", type=float, default=0.25,
                        help="score threshold of the confusion matrix (the PR curves use every detection)")
    add_exp_arguments(parser)
    return parser


def build_eval_exp(args: argparse.Namespace) -> ExpLike:
    """The exp of ``-f``/``-n`` with the overrides, ``--conf``, ``--nms``, ``--tsize`` and ``-expn`` applied."""
    exp = exp_from_args(args)
    if args.conf is not None:
        exp.test_conf = args.conf
    if args.nms is not None:
        exp.nmsthre = args.nms
    exp.test_size = tsize_from_args(args, exp.test_size)
    return exp


def run_evaluation(args: argparse.Namespace) -> dict:
    """Evaluate (or time, with ``--speed``) as the command line asks; return what eval_results.json holds."""
    import torch
    from loguru import logger

    from yolox.evaluators import COCOEvaluator
    from yolox.evaluators.coco_evaluator import check_backend
    from yolox.evaluators.inference import gather_inference
    from yolox.utils.checkpoint import default_checkpoint, load_exact_weights
    from yolox.utils.device import resolve_device
    from yolox.utils.dist import get_rank, get_world_size, is_distributed, is_main_process
    from yolox.utils.logger import log_to_file, setup_logger
    from yolox.utils.model_utils import fuse_model, get_model_info
    from yolox.utils.setup_env import seed_everything

    exp = build_eval_exp(args)
    output_dir = exp.run_dir
    setup_logger(output_dir, distributed_rank=get_rank(), filename=LOG_FILE, mode="a")
    log_to_file(f"args: {vars(args)}")
    if args.seed is not None:
        seed_everything(args.seed)
        logger.warning("--seed makes cuDNN deterministic, which can slow evaluation down")
    device = resolve_device(args.device)
    if device.type == "cuda" and is_distributed():
        device = torch.device("cuda", torch.cuda.current_device())  # the GPU that joining the group pinned
    if args.fp16 and device.type != "cuda":
        raise UserError(f"--fp16 needs a CUDA device but the run is on {device}: drop --fp16 or use --device cuda")
    model = exp.get_model()
    logger.info(f"model summary: {get_model_info(model, exp.test_size)}")
    evaluator = exp.get_evaluator(args.batch_size, is_distributed(), args.test, args.legacy)
    if args.coco_backend != "pycocotools":
        if not isinstance(evaluator, COCOEvaluator):
            raise UserError(f"--coco-backend {args.coco_backend} applies to COCO-format data, not {exp.dataset_format}")
        check_backend(args.coco_backend)
        evaluator.backend = args.coco_backend
    if args.save_detections and (args.test or args.speed or not isinstance(evaluator, COCOEvaluator)):
        raise UserError("--save-detections keeps the detections of a scored COCO-format evaluation: drop it with "
                        f"--test or --speed, or for {exp.dataset_format} data")
    if args.test:
        evaluator.testdev_json = output_dir / "yolox_testdev_2017.json"
    ckpt_path = None
    if not args.speed:
        ckpt_path = args.ckpt or str(default_checkpoint(output_dir))
        load_exact_weights(model, ckpt_path, exp)
    model.to(device).eval()
    if args.fuse:
        logger.info("fusing convolutions and batch norms")
        model = fuse_model(model)
    results = {
        "mode": "speed" if args.speed else ("testdev" if args.test else "eval"),
        "exp": args.exp_file or args.name,
        "exp_name": exp.exp_name,
        "model": type(model).__name__,
        "depth": exp.depth,
        "width": exp.width,
        "attention": exp.attention,
        "ckpt": ckpt_path,
        "device": str(device),
        "world_size": get_world_size(),
        "test_size": list(exp.test_size),
        "conf": exp.test_conf,
        "nms": exp.nmsthre,
        "batch_size": args.batch_size,
        "fp16": bool(args.fp16),
        "fuse": bool(args.fuse),
        "coco_backend": args.coco_backend,
    }
    if args.speed:
        merged = gather_inference(evaluator.inference(model, half=args.fp16))
        if merged is not None:
            logger.info("\n" + merged.timing.summary())
            results["timing"] = merged.timing.per_image_ms()
    else:
        if args.plots and not isinstance(evaluator, COCOEvaluator):
            raise UserError(f"--plots needs COCO metrics (dataset_format coco or yolo), not {exp.dataset_format}")
        if args.plots and args.test:
            raise UserError("--plots needs scored detections: drop --test (test-dev is not scored)")
        keep_outputs = bool(args.plots or args.save_detections)
        report = evaluator.evaluate_report(model, is_distributed(), args.fp16, return_outputs=keep_outputs)
        logger.info("\n" + report.summary)
        results.update(report.to_dict())
        if args.plots and is_main_process():
            results["plots"] = [str(path) for path in write_evaluation_plots(evaluator, report, output_dir, args)]
        if args.save_detections and is_main_process():
            results["detections_file"] = str(save_detections(evaluator, report, Path(args.save_detections)))
    if is_main_process():
        results_path = output_dir / RESULTS_FILE
        write_json_atomically(results_path, results)
        logger.info(f"wrote {results_path}")
    return results


def write_evaluation_plots(evaluator, report, output_dir: Path, args: argparse.Namespace) -> list[Path]:
    """PR curves and the confusion matrix of a COCO evaluation, in ``<output_dir>/eval_plots/``."""
    from loguru import logger

    from yolox.evaluators.plots import write_eval_plots

    coco = evaluator.dataloader.dataset.coco
    names = [coco.cats[cat_id]["name"] for cat_id in evaluator.class_ids]
    written = write_eval_plots(output_dir / "eval_plots", report.score.precision, report.detections, coco,
                               evaluator.class_ids, names, conf=args.plots_conf)
    logger.info(f"wrote {', '.join(str(path) for path in written)} (confusion matrix at IoU 0.50, score >= "
                f"{args.plots_conf:.2f})")
    return written


def save_detections(evaluator, report, path: Path) -> Path:
    """Write the COCO results array that was scored and its annotation file's path to ``path`` (.npz, compressed)."""
    import numpy as np

    from yolox.evaluators.coco_evaluator import detections_to_coco_array

    dataset = getattr(evaluator.dataloader, "dataset", evaluator.dataloader)
    annotations = Path(dataset.data_dir) / "annotations" / str(getattr(dataset, "json_file", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not annotations.is_file():  # data read into COCO form without a file (YOLO format): keep that form
        annotations = path.with_name(path.stem + "_annotations.json")
        write_json_atomically(annotations, dataset.coco.dataset)
    results = detections_to_coco_array(report.detections, evaluator.class_ids)
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:  # a file object: no ".npz" appended
        np.savez_compressed(stream, results=results, annotations=np.array(str(annotations.resolve())))
    return path


def eval_worker(args: argparse.Namespace) -> None:
    """Entry point of one process of ``-d N``: a user error is reported once and ends the run with code 2."""
    from yolox.utils.dist import is_main_process

    try:
        run_evaluation(args)
    except USER_ERRORS as err:
        if is_main_process():
            report_error(err)
        sys.exit(EXIT_USER_ERROR)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, start the processes and run the evaluation; user errors exit with code 2."""
    args = make_parser().parse_args(argv)
    return run_command(lambda: start_evaluation(args))


def start_evaluation(args: argparse.Namespace) -> None:
    """Evaluate in this process, or start ``-d`` processes (and machines) that do."""
    from yolox.core.launch import external_world_size, launch
    from yolox.utils.device import resolve_device

    if args.devices * args.num_machines <= 1 and external_world_size() is None:
        run_evaluation(args)
        return
    launch(eval_worker, args.devices, args.num_machines, args.machine_rank,
           backend=distributed_backend(args, resolve_device(args.device)), dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    sys.exit(main())
