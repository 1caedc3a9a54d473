"""Load an Exp from a file or by the name of a default exp."""

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from yolox.exp.base_exp import BaseExp
from yolox.utils.errors import UserError

DEFAULT_EXPS = {
    "yolox-nano": "yolox_nano",
    "yolox-tiny": "yolox_tiny",
    "yolox-s": "yolox_s",
    "yolox-m": "yolox_m",
    "yolox-l": "yolox_l",
    "yolox-x": "yolox_x",
    "yolov3": "yolov3",
}


def exp_module_name(path: Path) -> str:
    """The module an exp file is imported as: named after its full path, so that two files of the same name
    in different folders are two modules (a block each registers under one name is then a clash)."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"yolox_exp_file_{path.stem}_{digest}"


def get_exp_by_file(exp_file: str) -> BaseExp:
    """Import ``exp_file`` and instantiate its ``Exp`` class; a broken file is a UserError with its line."""
    path = Path(exp_file)
    if not path.is_file():
        raise UserError(f"exp file {exp_file} does not exist: check the -f path")
    module_name = exp_module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UserError(f"exp file {exp_file} has a syntax error at line {err.lineno}: {err.msg}\n"
                        f"    {(err.text or '').rstrip()}") from None
    except Exception as err:
        raise UserError(f"exp file {exp_file} failed to import{_line_in(err, path)}: {type(err).__name__}: {err}") from err
    if not hasattr(module, "Exp"):
        raise UserError(f"exp file {exp_file} defines no class named Exp: subclass yolox.exp.Exp there")
    try:
        return module.Exp()
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"exp file {exp_file}: Exp() failed{_line_in(err, path)}: {type(err).__name__}: {err}") from err


def _line_in(err: BaseException, path: Path) -> str:
    """`` at line N`` of the last traceback frame of ``err`` inside ``path``, else nothing."""
    frames = [frame for frame in traceback.extract_tb(err.__traceback__)
              if Path(frame.filename) in (path, path.resolve())]
    return f" at line {frames[-1].lineno}" if frames else ""


def default_exp_key(name: str) -> str:
    """The spelling rule of default exp names: ``YOLOX_S`` and ``yolox-s`` both name ``yolox-s``."""
    return name.replace("_", "-").lower()


def get_exp_by_name(exp_name: str) -> BaseExp:
    """Instantiate a default exp by its name, such as ``yolox-s``."""
    key = default_exp_key(exp_name)
    if key not in DEFAULT_EXPS:
        raise UserError(f"unknown exp name {exp_name!r}: use one of {', '.join(DEFAULT_EXPS)} or -f an exp file")
    module = importlib.import_module(f"yolox.exp.default.{DEFAULT_EXPS[key]}")
    return module.Exp()


def get_exp(exp_file: str | None = None, exp_name: str | None = None, overrides: Sequence[str] | None = None,
            experiment_name: str | None = None) -> BaseExp:
    """The Exp of ``exp_file`` when given, else the default exp named ``exp_name`` (such as ``yolox-s``).

    ``overrides`` are ``key value`` pairs applied with :meth:`~yolox.exp.BaseExp.merge` (which also checks
    the settings, so pass ``[]`` to check them without overriding anything), and
    ``experiment_name`` renames the run (its folder is ``<output_dir>/<experiment_name>``). The first two
    arguments are the official YOLOX signature.
    """
    if exp_file:
        exp = get_exp_by_file(exp_file)
    elif exp_name:
        exp = get_exp_by_name(exp_name)
    else:
        raise UserError("no experiment given: pass -f <exp file> or -n <name> (for example -n yolox-s)")
    if overrides is not None:
        exp.merge(list(overrides))
    if experiment_name:
        exp.exp_name = experiment_name
    return exp
