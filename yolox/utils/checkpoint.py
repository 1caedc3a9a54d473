"""Checkpoint files: atomic writes, safe loading, fine-tuning loads with a summary, and RNG states."""

import errno
import os
import pickle
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import nn

from yolox.utils.errors import UserError
from yolox.utils.files import TMP_SUFFIX, atomic_path
from yolox.utils.protocols import ExpLike
from yolox.utils.run_files import (
    BEST_CKPT,
    CKPT_SUFFIX,
    LAST_EPOCH_CKPT,
    LATEST_CKPT,
    checkpoint_file,
    trained_checkpoints,
)

MAX_NAMES_SHOWN = 6
# The head's first class-prediction conv: its first dimension is the checkpoint's class count.
HEAD_CLASS_KEY = "head.cls_preds.0.weight"
WRITE_ERRNO_WORDS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "operation not permitted",
}


def describe_write_error(err: BaseException) -> str:
    """A short cause for a failed file write ("no space left on device", ...), looking through chained errors."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in WRITE_ERRNO_WORDS:
            return WRITE_ERRNO_WORDS[seen.errno]
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    for errno_value, words in WRITE_ERRNO_WORDS.items():
        if os.strerror(errno_value).lower() in text.lower():
            return words
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (full disk, read-only folder, ...); the previous file is untouched."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path`` and rename it into place.

    A crash or a full disk during the write leaves the previous file at ``path`` untouched; a write that
    fails raises :class:`CheckpointWriteError` naming the path and the cause. The file gets the usual
    permissions (0666 less the umask), like every other file the run writes.
    """
    path = Path(path)
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
    except (OSError, RuntimeError) as err:
        kept = "the previous file is kept" if path.is_file() else "nothing was written"
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {describe_write_error(err)} ({kept}); "
                                   "free space or choose another output_dir") from err


def default_checkpoint(run_dir: str | os.PathLike) -> Path:
    """``<run_dir>/best_ckpt.pth``; when it is missing, a UserError that lists the checkpoints the run has."""
    run_dir = Path(run_dir)
    best = run_dir / BEST_CKPT
    if "best" in trained_checkpoints(run_dir):
        return best
    found = sorted(run_dir.glob(f"*{CKPT_SUFFIX}")) if run_dir.is_dir() else []
    order = {LATEST_CKPT: 0, LAST_EPOCH_CKPT: 1}
    found.sort(key=lambda path: (order.get(path.name, 2), -path.stat().st_mtime))
    if not found:
        raise UserError(f"{best} does not exist and {run_dir} holds no checkpoint: train this exp first, "
                        "or pass a checkpoint with -c")
    names = ", ".join(path.name for path in found[:MAX_NAMES_SHOWN])
    more = f" (+{len(found) - MAX_NAMES_SHOWN} more)" if len(found) > MAX_NAMES_SHOWN else ""
    raise UserError(f"{best} does not exist (it is written at a run's first evaluation); {run_dir} holds "
                    f"{names}{more}: pass one with -c, e.g. -c {found[0]}")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary checkpoint files (``.<name>_ckpt.pth.*.tmp``) an interrupted save left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f".*{CKPT_SUFFIX}.*{TMP_SUFFIX}"))
    for tmp_path in stale:
        tmp_path.unlink(missing_ok=True)
    return stale


def first_nonfinite_tensor(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of ``state_dict`` holding a NaN or an infinity, else None."""
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def save_checkpoint(state: dict, is_best: bool, save_dir: str | os.PathLike, model_name: str = "") -> Path:
    """Write ``<save_dir>/<model_name>_ckpt.pth`` (and ``best_ckpt.pth`` when ``is_best``); return the path."""
    save_dir = Path(save_dir)
    filename = save_dir / checkpoint_file(model_name)
    atomic_save(state, filename)
    if is_best:
        atomic_save(state, save_dir / BEST_CKPT)
    return filename


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file with ``weights_only=True``: the one reader of training, evaluation and inference.

    Ours, the official YOLOX layout (``{"model": state_dict, ...}``) and a bare state dict all load; a
    missing file raises FileNotFoundError and an unreadable one a UserError, both naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: check the -c/--ckpt path (or the experiment name)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - the unpickler raises many types; the message says what to do
        raise UserError(f"cannot read checkpoint {path}: {describe_load_failure(err)}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict with a 'model' entry")
    return ckpt


def describe_load_failure(err: BaseException) -> str:
    """Why a safe ``torch.load`` refused a file, in our words (torch's own text advises the unsafe way out)."""
    text = str(err)
    refused = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text)
    if refused is not None or (isinstance(err, pickle.UnpicklingError) and "weights_only" in text.lower()):
        name = next((group for group in (refused.groups() if refused else ()) if group), None)
        found = f" (such as {name})" if name else ""
        return (f"it holds objects other than tensors and plain Python values{found} and was refused for safety: "
                "loading them could run code stored in the file. Use a checkpoint saved as tensors and plain "
                "values (a state dict), from a source you trust")
    first_sentence = text.split(". ")[0].strip().rstrip(".")
    return (f"it is not a complete torch.save file ({type(err).__name__}: {first_sentence}); it may be truncated "
            "or not a checkpoint at all: re-save it or pick another file")


def checkpoint_state_dict(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint dict: its ``model`` entry (official layout) or the dict itself."""
    return ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt


def _checkpoint_build(state: dict[str, torch.Tensor]) -> tuple[int | None, bool]:
    """The class count and whether attention weights are present, read from a state dict's names and shapes."""
    head = state.get(HEAD_CLASS_KEY)
    # Attention blocks live in modules named attn / <place>_attn (the neck's: attn, neck_attn) or attention
    # (inside a ResNet residual block: backbone.backbone.layer3.0.attention.*).
    has_attention = any(part.endswith("attn") or part == "attention" for name in state for part in name.split(".")[:-1])
    return (int(head.shape[0]) if head is not None else None), has_attention


def load_exact_weights(model: nn.Module, ckpt_path: str | os.PathLike, exp: ExpLike) -> dict[str, Any]:
    """Load every weight of ``model`` from ``ckpt_path`` strictly, or raise a UserError naming the difference.

    Used where partially random weights would silently give wrong boxes (evaluation, inference, export).
    The checkpoint's recorded settings are checked against the exp first; returns the checkpoint's meta.
    """
    ckpt = load_checkpoint_file(ckpt_path)
    meta = ckpt.get("meta") or {}
    exp.check_meta(meta, str(ckpt_path))
    state = checkpoint_state_dict(ckpt)
    own = model.state_dict()
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    reshaped = [name for name in own if name in state and tuple(state[name].shape) != tuple(own[name].shape)]
    if missing or unexpected or reshaped:
        ckpt_classes, ckpt_attention = _checkpoint_build(state)
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        raise UserError(
            f"checkpoint {ckpt_path} does not fit the model of exp '{exp.exp_name}': the checkpoint has "
            f"num_classes={ckpt_classes} and {'attention weights' if ckpt_attention else 'no attention'}, the exp "
            f"builds num_classes={exp.num_classes} and attention={getattr(exp, 'attention', None)!r} ({len(missing)} "
            f"missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped tensors, e.g. {examples}). Pass the exp "
            "file it was trained with (-f exps/...) or override num_classes / attention."
        )
    model.load_state_dict(state, strict=True)
    logger.info(f"loaded checkpoint {ckpt_path}")
    return meta


def _names_by_module(names: list[str]) -> str:
    """Summarise tensor names as their parent module paths with counts, a few at most."""
    groups: dict[str, int] = defaultdict(int)
    for name in names:
        groups[name.rsplit(".", 1)[0] if "." in name else name] += 1
    shown = [f"{prefix}.* ({count})" for prefix, count in list(groups.items())[:MAX_NAMES_SHOWN]]
    if len(groups) > MAX_NAMES_SHOWN:
        shown.append(f"+{len(groups) - MAX_NAMES_SHOWN} more modules")
    return ", ".join(shown)


def load_ckpt(model: nn.Module, ckpt: dict) -> nn.Module:
    """Load every tensor of ``ckpt`` whose name and shape match ``model``; log one summary line.

    ``ckpt`` is a state dict or a checkpoint dict with a ``model`` entry (the official layout). Tensors of
    the model absent from it are reported as new (kept as initialised); tensors whose shape differs (e.g.
    a head with another class count) are reported as skipped; tensors the model lacks are reported as unused.
    """
    state = checkpoint_state_dict(ckpt)
    own = model.state_dict()
    loadable, skipped = {}, []
    for name, value in state.items():
        if name not in own:
            continue
        if tuple(value.shape) != tuple(own[name].shape):
            skipped.append(f"{name} {tuple(value.shape)}->{tuple(own[name].shape)}")
            continue
        loadable[name] = value
    new = [name for name in own if name not in state]
    unused = [name for name in state if name not in own]
    model.load_state_dict(loadable, strict=False)
    parts = [f"loaded {len(loadable)}/{len(own)} tensors"]
    parts.append(f"new {len(new)}" + (f": {_names_by_module(new)}" if new else ""))
    shown_skipped = skipped[:MAX_NAMES_SHOWN]
    if len(skipped) > MAX_NAMES_SHOWN:
        shown_skipped.append(f"+{len(skipped) - MAX_NAMES_SHOWN} more")
    parts.append(f"skipped for shape mismatch {len(skipped)}" + (f": {', '.join(shown_skipped)}" if skipped else ""))
    if unused:
        parts.append(f"unused from checkpoint {len(unused)}: {_names_by_module(unused)}")
    logger.info("checkpoint load: " + "; ".join(parts))
    if len(loadable) * 2 < len(own):
        logger.warning(f"only {len(loadable)} of the model's {len(own)} tensors were loaded from the checkpoint "
                       f"({len(skipped)} of another shape, {len(new)} absent): it was most likely trained with "
                       f"another model size{_model_size_hint(ckpt)}; use the exp (-f/-n) it was trained with, or "
                       "ignore this if training mostly from scratch is intended")
    return model


def _model_size_hint(ckpt: dict) -> str:
    """`` (depth X, width Y)`` from the checkpoint's meta when it records them, else nothing."""
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    if "depth" in meta and "width" in meta:
        return f" (the checkpoint's meta says depth {meta['depth']}, width {meta['width']})"
    return ""


def capture_rng_state() -> dict:
    """Return the Python, NumPy, torch and CUDA generator states as tensors and plain numbers.

    The result survives ``torch.load(weights_only=True)``: no NumPy objects, no tuples of mixed types.
    """
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def restore_rng_state(state: dict) -> None:
    """Set the generators back to a state returned by :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state["cuda"]
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:
            logger.warning(
                f"the checkpoint holds CUDA RNG states for {len(cuda_states)} devices, this machine has "
                f"{torch.cuda.device_count()}: CUDA random numbers will differ from the interrupted run"
            )
