"""Checkpoint files: atomic writes, safe loading, fine-tuning loads with a summary, and RNG states."""

import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import nn

from yolox.utils.errors import UserError

MAX_NAMES_SHOWN = 6


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path`` and rename it into place.

    A crash or a full disk during the write leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict, is_best: bool, save_dir: str | os.PathLike, model_name: str = "") -> Path:
    """Write ``<save_dir>/<model_name>_ckpt.pth`` (and ``best_ckpt.pth`` when ``is_best``); return the path."""
    save_dir = Path(save_dir)
    filename = save_dir / f"{model_name}_ckpt.pth"
    atomic_save(state, filename)
    if is_best:
        atomic_save(state, save_dir / "best_ckpt.pth")
    return filename


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a missing or unreadable file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: check the -c/--ckpt path (or the experiment name)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - the unpickler raises many types; the message says what to do
        raise UserError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {err}. "
            "It must be a torch.save file of tensors and plain Python values (re-save it or pick another file)."
        ) from err
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict with a 'model' entry")
    return ckpt


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
    state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
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
    return model


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
