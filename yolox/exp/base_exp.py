"""The abstract experiment interface and its strict command-line overrides."""

import ast
import difflib
import inspect
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from yolox.utils.errors import UserError

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


def parse_bool(text: str, key: str) -> bool:
    """Parse ``True/False/1/0`` (any case) or raise a UserError naming ``key``."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UserError(f"override {key}={text!r}: expected a boolean (True/False/1/0)")


def parse_scalar(text: str) -> Any:
    """Turn one word into an int, float, None, bool or literal when it reads as one, else keep the string."""
    word = text.strip()
    if word.lower() == "none":
        return None
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    try:
        return ast.literal_eval(word)
    except (ValueError, SyntaxError):
        return word


def _as_tuples(value: Any) -> Any:
    """Lists inside a parsed literal as tuples, the way exp files write nested settings."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def parse_nested(text: str, current: tuple | list, key: str) -> tuple | list:
    """Parse a sequence of sequences such as ``(('2007','trainval'),)`` with Python's literal parser."""
    example = repr(tuple(tuple(item) for item in current)) if current else "(('2007','trainval'),)"
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (tuple, list)) or not all(isinstance(item, (tuple, list)) for item in value):
        raise UserError(f"override {key}={text!r}: expected a tuple of tuples written as a Python literal, "
                        f"quoted for the shell, e.g. {key} \"{example}\"")
    return type(current)(_as_tuples(item) for item in value)


def parse_like(text: str, current: Any, key: str) -> Any:
    """Parse ``text`` into the type of ``current`` (the attribute's present value)."""
    if text.strip().lower() == "none":
        return None
    if isinstance(current, (tuple, list)) and current and isinstance(current[0], (tuple, list)):
        return parse_nested(text, current, key)
    try:
        if isinstance(current, bool):
            return parse_bool(text, key)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            stripped = text.strip().strip("()[]")
            items = [item for item in stripped.split(",") if item.strip()]
            if current:
                parsed = [parse_like(item, current[0], key) for item in items]
            else:
                parsed = [parse_scalar(item) for item in items]
            return type(current)(parsed)
        if isinstance(current, dict):
            value = ast.literal_eval(text)
            if not isinstance(value, dict):
                raise ValueError("not a dict")
            return value
    except (ValueError, SyntaxError) as err:
        kind = type(current).__name__
        example = {"tuple": "640,640", "list": "1,2", "dict": "{'reduction': 16}"}.get(kind, "")
        hint = f" such as {example}" if example else ""
        raise UserError(f"override {key}={text!r}: expected a value of type {kind}{hint} ({err})") from None
    if current is None:
        if "," in text:
            return tuple(parse_scalar(item) for item in text.strip().strip("()[]").split(",") if item.strip())
        return parse_scalar(text)
    return text


class BaseExp(metaclass=ABCMeta):
    """Everything a run needs to know, in one object: model, data, training, testing and attention."""

    def __init__(self) -> None:
        self.seed = None
        self.output_dir = "./YOLOX_outputs"
        self.print_interval = 100
        self.eval_interval = 10
        self.exp_name = Path(inspect.getfile(type(self))).stem

    @property
    def run_dir(self) -> Path:
        """The run's folder, ``<output_dir>/<exp_name>``: checkpoints, logs and evaluation results go there."""
        return Path(self.output_dir) / self.exp_name

    @abstractmethod
    def get_model(self) -> torch.nn.Module:
        """Build the detector."""

    @abstractmethod
    def get_dataset(self, cache: bool = False, cache_type: str = "ram") -> Any:
        """Build the training dataset."""

    @abstractmethod
    def get_data_loader(self, batch_size: int, is_distributed: bool, no_aug: bool = False,
                        cache_img: Any = None) -> Any:
        """Build the training data loader."""

    @abstractmethod
    def get_optimizer(self, batch_size: int) -> torch.optim.Optimizer:
        """Build the optimizer."""

    @abstractmethod
    def get_lr_scheduler(self, lr: float, iters_per_epoch: int, **kwargs: Any) -> Any:
        """Build the learning-rate schedule."""

    @abstractmethod
    def get_evaluator(self, batch_size: int, is_distributed: bool, testdev: bool = False,
                      legacy: bool = False) -> Any:
        """Build the evaluator."""

    @abstractmethod
    def eval(self, model: torch.nn.Module, evaluator: Any, is_distributed: bool, half: bool = False,
             return_outputs: bool = False) -> Any:
        """Evaluate ``model`` with ``evaluator``."""

    def public_settings(self) -> dict[str, Any]:
        """The exp's settings (public attributes that are not methods), by name."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def __repr__(self) -> str:
        rows = [(key, repr(value)) for key, value in self.public_settings().items()]
        return tabulate(rows, headers=("key", "value"), tablefmt="fancy_grid")

    def merge(self, opts: Sequence[str]) -> None:
        """Apply ``key value`` overrides; an unknown key or a badly typed value is a UserError."""
        opts = list(opts or [])
        if len(opts) % 2:
            raise UserError(f"overrides come in 'key value' pairs, got an odd count: {' '.join(opts)}")
        known = self.public_settings()
        for key, text in zip(opts[0::2], opts[1::2]):
            if key not in known:
                close = difflib.get_close_matches(key, known.keys(), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise UserError(f"unknown exp key '{key}' in the overrides{hint}")
            self.apply_override(key, parse_like(text, known[key], key))
        self.validate()

    def apply_override(self, key: str, value: Any) -> None:
        """Set one parsed command-line override (a subclass may give a value a command-line meaning)."""
        setattr(self, key, value)

    def validate(self) -> None:
        """Check the settings; raise a UserError naming the first bad value."""
        for key in ("print_interval", "eval_interval"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise UserError(f"exp key {key}={getattr(self, key)!r}: must be a whole number >= 1")
