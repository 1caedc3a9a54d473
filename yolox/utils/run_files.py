"""The run folder's checkpoint files: their names, and which checkpoint a finished training leaves for each use.

Only ``pathlib`` is imported, so a command's flag help can name these files without importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

CKPT_SUFFIX = "_ckpt.pth"
# The stems the trainer saves under (``<stem>_ckpt.pth``); per-epoch copies are ``epoch_<n>``.
LATEST = "latest"  # after every epoch and on Ctrl-C: what --resume continues from
LAST_EPOCH = "last_epoch"  # once, when the schedule is done: the final weights
LAST_MOSAIC_EPOCH = "last_mosaic_epoch"  # when mosaic/mixup switch off for the last no-aug epochs
BEST = "best"  # at the first evaluation and whenever the AP reaches the best so far


def checkpoint_file(stem: str) -> str:
    """The file name the trainer writes for ``stem``: ``latest`` -> ``latest_ckpt.pth``."""
    return f"{stem}{CKPT_SUFFIX}"


BEST_CKPT = checkpoint_file(BEST)
LATEST_CKPT = checkpoint_file(LATEST)
LAST_EPOCH_CKPT = checkpoint_file(LAST_EPOCH)


def trained_checkpoints(run_dir: str | os.PathLike) -> dict[str, Path]:
    """The checkpoints a finished training left in ``run_dir``: ``last`` (the schedule's final weights) and
    ``best`` (selected by the evaluations), each only when its file exists.

    This is the one rule for "which checkpoint after training": the evaluation default, the quick start
    and the study all read it.
    """
    run_dir = Path(run_dir)
    found = {"last": run_dir / LAST_EPOCH_CKPT, "best": run_dir / BEST_CKPT}
    return {role: path for role, path in found.items() if path.is_file()}
