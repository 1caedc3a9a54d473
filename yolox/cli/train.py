"""``python tools/train.py``: train a detector with the official YOLOX flags plus ``--device``, one or many processes."""

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

import torch
from loguru import logger

from yolox.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    USER_ERRORS,
    add_distributed_arguments,
    add_exp_arguments,
    command_parser,
    distributed_backend,
    exp_from_flags,
    positive_int,
    report_error,
    run_command,
)
from yolox.core.launch import external_world_size, launch
from yolox.core.run_folder import training_run_folder
from yolox.core.trainer import NonFiniteLossError, Trainer
from yolox.exp import Exp
from yolox.utils.device import resolve_device
from yolox.utils.dist import get_rank, get_world_size
from yolox.utils.errors import UserError
from yolox.utils.loggers import LOGGER_CHOICES, split_wandb_options
from yolox.utils.protocols import TrainingExpLike
from yolox.utils.run_files import LATEST_CKPT
from yolox.utils.setup_env import configure_allocator, configure_threads


def make_parser() -> argparse.ArgumentParser:
    """The command-line flags (names and defaults as in the official YOLOX)."""
    parser = command_parser("yolox train", "Train a YOLOX detector (with optional attention).")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=64, help="total batch size over all processes")
    add_distributed_arguments(parser, None, "processes on this machine (default: the GPU count on CUDA, 1 on CPU or "
                                            "with --device cuda:N; under torchrun or srun each task is one process)")
    parser.add_argument("--resume", action="store_true", default=False,
                        help=f"continue a run exactly from -c or <output_dir>/<exp_name>/{LATEST_CKPT}")
    parser.add_argument("--stop-after-epoch", type=int, default=None, metavar="N",
                        help="train only up to epoch N of the schedule (its learning-rate curve unchanged), evaluate "
                             "there, save latest_ckpt.pth and exit; --resume continues the run")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="start a new run in a folder that holds another run's checkpoints, moving that run "
                             "aside to <folder>.replaced-<time>")
    parser.add_argument("-e", "--start_epoch", type=int, default=None, help="1-based epoch to resume at")
    parser.add_argument("--fp16", dest="fp16", action="store_true", default=False,
                        help="mixed precision: float16 with loss scaling on CUDA, bfloat16 on CPU")
    add_speed_arguments(parser)
    parser.add_argument("--cache", type=str, nargs="?", const="ram", default=None, choices=("ram", "disk"),
                        help="cache decoded training images in RAM or on disk")
    parser.add_argument("-l", "--logger", type=str, default="none", choices=LOGGER_CHOICES,
                        help="extra scalar logger (the text log is always written); wandb takes trailing "
                             "wandb-<option> value pairs (wandb-project NAME), mlflow reads MLFLOW_*/YOLOX_MLFLOW_* "
                             "environment variables")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the arguments and the exp table on the console (train_log.txt always has them)")
    parser.add_argument("-o", "--occupy", action="store_true",
                        help="reserve 90%% of each GPU's memory in torch's cache before training, as in the official "
                             "YOLOX; does nothing on CPU")
    add_exp_arguments(parser, ckpt_help="checkpoint to fine-tune from (non-strict), or to resume from with --resume")
    return parser


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """Training speed switches (mostly for CUDA); each leaves the numbers of a run as they are unless it says so."""
    speed = parser.add_argument_group("speed")
    speed.add_argument("--amp", choices=("fp16", "bf16"), default=None,
                       help="autocast dtype: fp16 (with loss scaling, CUDA only) or bf16 (no scaling); overrides --fp16")
    speed.add_argument("--channels-last", action="store_true", help="model and inputs in channels-last memory format")
    speed.add_argument("--optimizer-impl", choices=("default", "foreach", "fused"), default="default",
                       help="SGD kernels: torch's default choice, foreach (a few kernels per group) or fused (one)")
    speed.add_argument("--loss-readback", choices=("iter", "print"), default="iter",
                       help="read the losses back every iteration (a device sync each) or only at the print "
                            "interval and before a save; a non-finite loss is then reported at that point")
    speed.add_argument("--cudnn-benchmark", action="store_true",
                       help="let cuDNN time and pick convolution kernels also in seeded runs (on by default unseeded)")
    speed.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                       help="torch.compile the model (backend: inductor unless named); the first iteration's "
                            "time, compilation included, is logged")


def build_exp(args: argparse.Namespace) -> TrainingExpLike:
    """The exp named by the flags with the command-line overrides (less the W&B ones) and ``-expn`` applied."""
    exp_opts, wandb_opts = split_wandb_options(args.opts)
    if wandb_opts and args.logger != "wandb":
        raise UserError(f"wandb-{next(iter(wandb_opts))} is a W&B option: add -l wandb, or drop it")
    return exp_from_flags(args, exp_opts)


def train_worker(args: argparse.Namespace, lockstep: Sequence[Sequence[str]] = ()) -> None:
    """Train in this process (one rank); expected failures are printed briefly and end it with an exit code.

    ``lockstep``: the exp overrides (instead of the command line's) of more members trained alongside.
    """
    rank = get_rank()
    prefix = f"[rank {rank}] " if get_world_size() > 1 else ""
    try:
        configure_threads(int(os.environ.get("LOCAL_WORLD_SIZE", getattr(args, "local_world_size", 1))))
        if resolve_device(args.device).type == "cpu":
            configure_allocator()
        exp = build_exp(args)
        if args.occupy and torch.cuda.is_available() and resolve_device(args.device).type == "cuda":
            from yolox.utils.compat import occupy_mem

            occupy_mem(torch.cuda.current_device())
        members = [exp, *(exp_from_flags(args, overrides) for overrides in lockstep)]
        with contextlib.ExitStack() as folders:  # every member's run folder is held while it trains
            ckpts = [folders.enter_context(training_run_folder(member.run_dir, args.resume, args.overwrite, args.ckpt,
                                                               rank)) for member in members]
            args.ckpt = ckpts[0]  # the moved run's place when --overwrite moved the -c checkpoint aside
            if lockstep:
                Trainer(exp, args, lockstep_with=members[1:]).train()
            else:
                exp.get_trainer(args).train()
    except USER_ERRORS as err:
        report_error(err, prefix)
        raise SystemExit(EXIT_USER_ERROR) from None
    except NonFiniteLossError as err:
        if rank == 0:
            logger.error(str(err))
        raise SystemExit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


def processes_on_this_machine(devices: int | None, device: torch.device, launched: bool) -> int:
    """How many processes this command starts: one under torchrun/srun or for ``--device cuda:N``, else ``-d``."""
    if launched:
        return 1
    if device.type == "cuda" and device.index is not None:
        if devices not in (None, 1):
            raise UserError(f"--device {device} names one GPU but -d {devices} asks for {devices} processes: use "
                            f"--device cuda with -d {devices}, or drop -d")
        return 1
    if devices is None:
        return torch.cuda.device_count() if device.type == "cuda" else 1
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise UserError(f"-d {devices} asks for more GPUs than the {torch.cuda.device_count()} visible here")
    return devices


def main(argv: Sequence[str] | None = None, lockstep: Sequence[Sequence[str]] = ()) -> int:
    """Parse ``argv``, start the processes and return the exit code (2 for a user error).

    ``lockstep`` (the study's ``--lockstep``): the exp overrides of more members, each replacing the command
    line's, trained with it from one data stream (see :class:`yolox.core.trainer.Trainer`).
    """
    args = make_parser().parse_args(argv)
    return run_command(lambda: start_training(args, lockstep))


def start_training(args: argparse.Namespace, lockstep: Sequence[Sequence[str]] = ()) -> None:
    """Check the flags and the exp in this process, then start the training processes (with ``lockstep``'s
    members, see :func:`main`)."""
    device = resolve_device(args.device)
    exp = build_exp(args)  # fail here, before any process starts, on a bad exp file or override
    lockstep = [list(overrides) for overrides in lockstep]
    for overrides in lockstep:
        exp_from_flags(args, overrides)
    if lockstep and getattr(type(exp), "get_trainer", None) is not Exp.get_trainer:
        raise UserError(f"exp {args.exp_file or args.name} has its own get_trainer, which a lockstep group cannot "
                        "use (it trains every member with yolox.core.Trainer): train this study without --lockstep")
    launched_world_size = external_world_size()
    args.devices = processes_on_this_machine(args.devices, device, launched_world_size is not None)
    args.local_world_size = args.devices
    world_size = launched_world_size or args.devices * args.num_machines
    if args.batch_size < world_size or args.batch_size % world_size:
        raise UserError(f"-b/--batch-size {args.batch_size} is the total over {world_size} processes: "
                        f"use a multiple of {world_size}")
    launch(train_worker, args.devices, num_machines=args.num_machines, machine_rank=args.machine_rank,
           backend=distributed_backend(args, device), dist_url=args.dist_url, args=(args, lockstep))


if __name__ == "__main__":
    sys.exit(main())
