"""What every command shares: the exp flags, building the exp from them, ``--tsize``, errors and exit codes.

Only argparse is imported at module level, so that a command's ``--help`` stays quick (no torch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from yolox.utils.errors import UserError
from yolox.utils.protocols import ExpLike
from yolox.utils.run_files import BEST_CKPT

if TYPE_CHECKING:
    import torch
    from torch import nn


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
# Mistakes the user can fix from the message alone: printed in one line, exit code 2, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, FileNotFoundError)


def add_exp_arguments(
    parser: argparse.ArgumentParser,
    overrides_nargs: str = argparse.REMAINDER,
    ckpt_help: str | None = f"checkpoint (default: <output_dir>/<exp_name>/{BEST_CKPT})",
    default_name: str | None = None,
) -> None:
    """Add the flags naming the exp (-expn, -n, -f), the checkpoint (-c) and the trailing ``key value`` overrides.

    ``ckpt_help=None`` leaves ``-c`` out, for commands that use no weights.

    ``overrides_nargs="*"`` suits parsers with a positional before the flags (``parse_intermixed_args``),
    where a REMAINDER would swallow every later flag.
    """
    parser.add_argument("-expn", "--experiment-name", default=None,
                        help="override the exp name, which names the run folder <output_dir>/<exp_name>")
    parser.add_argument("-n", "--name", default=default_name,
                        help=f"default exp name, e.g. yolox-s (default: {default_name or 'none; give -f or -n'})")
    parser.add_argument("-f", "--exp_file", default=None, help="exp file, e.g. exps/yolox_s_cam.py (wins over -n)")
    if ckpt_help is not None:
        parser.add_argument("-c", "--ckpt", default=None, help=ckpt_help)
    parser.add_argument("opts", nargs=overrides_nargs,
                        help="exp overrides as 'key value' pairs, e.g. max_epoch 10 input_size 416,416")


def add_tsize_argument(parser: argparse.ArgumentParser, default_text: str = "the exp's test_size") -> None:
    """Add ``--tsize``: one int for a square input or ``H,W``, multiples of 32."""
    from yolox.utils.onnx_inference import parse_size

    parser.add_argument("--tsize", type=parse_size, default=None,
                        help=f"input size: 640 for a square or H,W such as 480,640 (default: {default_text})")


def exp_from_args(args: argparse.Namespace) -> ExpLike:
    """The exp of ``-f`` (or ``-n``) with the trailing overrides and ``-expn`` applied (flags -> :func:`get_exp`)."""
    return exp_from_flags(args, args.opts)


def exp_from_flags(args: argparse.Namespace, overrides: Sequence[str]) -> ExpLike:
    """The exp that ``-f``/``-n`` and ``-expn`` of ``args`` name, with ``overrides`` instead of ``args.opts``."""
    from yolox.exp import get_exp

    return get_exp(args.exp_file, args.name, list(overrides or []), args.experiment_name)


def tsize_from_args(args: argparse.Namespace, default: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) that ``--tsize`` asks for, checked against the stride grid, else ``default``."""
    from yolox.utils.predictor import input_size

    return input_size(args.tsize, default)


def load_exp_model(
    exp: ExpLike, ckpt: str | None, device: torch.device, fuse: bool = False
) -> tuple[nn.Module, tuple[str, ...] | None]:
    """The exp's model in eval mode with the weights of ``ckpt`` (default: the run's best_ckpt.pth), and class names."""
    from pathlib import Path

    from yolox.data.datasets import COCO_CLASSES
    from yolox.utils.checkpoint import default_checkpoint
    from yolox.utils.predictor import load_inference_model, resolve_class_names

    ckpt_path = Path(ckpt) if ckpt else default_checkpoint(exp.run_dir)
    model, meta = load_inference_model(exp, ckpt_path, device, fuse=fuse)
    return model, resolve_class_names(meta, exp.resolved_class_names(), exp.num_classes, COCO_CLASSES)


def add_export_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """Add the flags both exporters share: ``--decode_in_inference``, ``--tsize`` and the exp flags, last."""
    parser.add_argument("--decode_in_inference", action="store_true",
                        help=f"decode boxes inside the {kind} (else the output holds raw offsets per anchor)")
    add_tsize_argument(parser)
    add_exp_arguments(parser)


def load_model_for_export(
    args: argparse.Namespace, dynamic_hw: bool
) -> tuple[ExpLike, nn.Module, tuple[int, int], dict[str, str]]:
    """The exp, its CPU model prepared for export, the export size and the metadata that the file records."""
    import torch

    from yolox.utils.export import export_metadata, prepare_for_export

    exp = exp_from_args(args)
    input_hw = tsize_from_args(args, exp.test_size)
    model, class_names = load_exp_model(exp, args.ckpt, torch.device("cpu"))
    model = prepare_for_export(model, args.decode_in_inference)
    metadata = export_metadata(exp, class_names, input_hw, args.decode_in_inference, dynamic_batch=True,
                               dynamic_hw=dynamic_hw, strides=model.head.strides)
    return exp, model, input_hw, metadata


def report_error(err: BaseException, prefix: str = "") -> None:
    """Print ``err`` as the one ``error: ...`` line a command shows for a mistake the user can fix."""
    print(f"{prefix}error: {err}", file=sys.stderr)


def run_command(action: Callable[[], object], expected: tuple[type[Exception], ...] = USER_ERRORS) -> int:
    """Run a command's ``action``: exit code 0, or 2 after one ``error: ...`` line for an ``expected`` error."""
    try:
        action()
    except expected as err:
        report_error(err)
        return EXIT_USER_ERROR
    return EXIT_OK
