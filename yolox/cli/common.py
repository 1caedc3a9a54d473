"""What every command shares: its parser, the exp flags, building the exp from them, ``--tsize``, the
distributed flags, and (from ``yolox.utils.errors``) the one runner with its exit codes.

Nothing that imports torch is imported at module level, so that a command's ``--help`` stays quick.

Flag spelling: a flag of the official YOLOX keeps its official spelling (``--exp_file``, ``--num_machines``,
``--save_result``); every flag of this project is kebab-case (``--save-dir``), with an old snake_case spelling
kept as an alias.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from yolox.utils.errors import (  # noqa: F401  (re-exported: the commands import them from here)
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER_ERROR,
    USER_ERRORS,
    CommandFailed,
    UserError,
    report_error,
)
from yolox.utils.errors import run_command as run_action
from yolox.utils.protocols import ExpLike
from yolox.utils.run_files import BEST_CKPT

if TYPE_CHECKING:
    import torch
    from torch import nn


def run_command(action: Callable[[], object], expected: tuple[type[Exception], ...] = USER_ERRORS) -> int:
    """The one runner (:func:`yolox.utils.errors.run_command`) with the console log in the commands' one format."""
    from yolox.utils.logger import setup_console_logger

    setup_console_logger()
    return run_action(action, expected)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to a flag's help unless the help already speaks of its default or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (not the usage block), with exit code 2."""

    def error(self, message: str) -> None:
        """Print ``<prog>: error: <message>`` and where the flags are listed, then exit with code 2."""
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (flags: {self.prog} --help)\n")


def command_parser(prog: str, description: str, **kwargs: object) -> argparse.ArgumentParser:
    """The parser of the command ``prog`` (e.g. ``yolox train``): defaults in ``--help``, no abbreviated flags.

    Abbreviations are off so that an official flag such as ``--dynamic`` is never read as another flag's prefix.
    """
    return CommandParser(prog, description=description, formatter_class=DefaultsHelpFormatter, allow_abbrev=False,
                         **kwargs)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is below {low}: give an integer of at least {low}")
    return value


def add_distributed_arguments(parser: argparse.ArgumentParser, devices_default: int | None, devices_help: str) -> None:
    """Add the official process flags (``-d``, ``--num_machines``, ``--machine_rank``, ``--dist-url``,
    ``--dist-backend``) and ``--device``."""
    parser.add_argument("-d", "--devices", type=positive_int, default=devices_default, help=devices_help)
    parser.add_argument("--num_machines", type=positive_int, default=1, help="machines taking part")
    parser.add_argument("--machine_rank", type=non_negative_int, default=0, help="rank of this machine")
    parser.add_argument("--dist-url", type=str, default=None,
                        help="tcp://<host of machine 0>:<port> for several machines (one machine: a free local port)")
    parser.add_argument("--dist-backend", type=str, default=None, choices=("nccl", "gloo"),
                        help="default: nccl on CUDA, gloo on CPU")
    parser.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")


def distributed_backend(args: argparse.Namespace, device: torch.device) -> str:
    """The ``--dist-backend`` asked for, else NCCL on CUDA and gloo on CPU."""
    return args.dist_backend or ("nccl" if device.type == "cuda" else "gloo")


def check_output_folder(path: Path, flag: str) -> None:
    """Raise a :class:`UserError` now, before any work, when ``path`` cannot become the output folder of ``flag``."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: give a folder (it is created when missing)")
    _check_writable_parent(path, flag)


def check_output_file(path: Path, flag: str) -> None:
    """Raise a :class:`UserError` now, before any work, when the file ``path`` of ``flag`` cannot be written."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name such as {path / 'report.json'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} is read-only: give a writable path")
    _check_writable_parent(path.parent, flag, path)


def _check_writable_parent(folder: Path, flag: str, target: Path | None = None) -> None:
    """The nearest existing folder of ``folder`` (itself included) must be a writable folder."""
    target = target or folder
    existing = next(candidate for candidate in (folder.absolute(), *folder.absolute().parents) if candidate.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} {target}: {existing} is a file, not a folder: give a path inside a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {target} cannot be written ({existing} is read-only): give a writable path")


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
    from yolox.data.datasets import COCO_CLASSES
    from yolox.utils.checkpoint import default_checkpoint
    from yolox.utils.predictor import load_inference_model, resolve_class_names

    ckpt_path = Path(ckpt) if ckpt else default_checkpoint(exp.run_dir)
    model, meta = load_inference_model(exp, ckpt_path, device, fuse=fuse)
    return model, resolve_class_names(meta, exp.resolved_class_names(), exp.num_classes, COCO_CLASSES)


def add_export_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """Add the flags both exporters share: ``--batch-size``, ``--decode_in_inference``, ``--tsize``, the exp flags."""
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help=f"batch of the example input the {kind} is traced with (default: 1)")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help=f"decode boxes inside the {kind} (else the output holds raw offsets per anchor)")
    add_tsize_argument(parser)
    add_exp_arguments(parser)


def load_model_for_export(
    args: argparse.Namespace, dynamic_hw: bool, dynamic_batch: bool = True
) -> tuple[ExpLike, nn.Module, tuple[int, int], dict[str, str]]:
    """The exp, its CPU model prepared for export, the export size and the metadata that the file records."""
    import torch

    from yolox.utils.export import export_metadata, prepare_for_export

    exp = exp_from_args(args)
    input_hw = tsize_from_args(args, exp.test_size)
    model, class_names = load_exp_model(exp, args.ckpt, torch.device("cpu"))
    model = prepare_for_export(model, args.decode_in_inference)
    metadata = export_metadata(exp, class_names, input_hw, args.decode_in_inference, dynamic_batch=dynamic_batch,
                               dynamic_hw=dynamic_hw, strides=model.head.strides)
    return exp, model, input_hw, metadata
