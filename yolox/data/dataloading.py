"""Where datasets live, worker seeding, and a DataLoader that can switch mosaic off."""

import os
import random
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader

DATADIR_ENV = "YOLOX_DATADIR"


def get_yolox_datadir() -> Path:
    """The folder holding the datasets: ``$YOLOX_DATADIR`` when set, else ``./datasets``."""
    return Path(os.environ.get(DATADIR_ENV) or "datasets")


def resolve_data_dir(data_dir: Optional[str], subfolder: str) -> Tuple[Path, str]:
    """The dataset folder and a phrase saying where it came from (for error messages).

    An explicit ``data_dir`` wins; else ``<datasets folder>/<subfolder>`` (see ``get_yolox_datadir``), or
    the datasets folder itself when it already is the dataset (it has ``annotations`` or ``VOC*`` inside
    but no ``<subfolder>``).
    """
    if data_dir:
        return Path(data_dir), f"{data_dir}, from the exp key data_dir"
    root = get_yolox_datadir()
    origin = f"${DATADIR_ENV}" if os.environ.get(DATADIR_ENV) else "the default ./datasets"
    nested = root / subfolder
    if not nested.is_dir() and ((root / "annotations").is_dir() or any(root.glob("VOC*"))):
        return root, f"{root.resolve()}, from {origin}"
    return nested, f"{nested.resolve()}, from {origin}"


def worker_init_reset_seed(worker_id: int) -> None:
    """Seed ``random``, numpy and torch in a loader worker from torch's per-worker seed.

    PyTorch derives that seed from the main process's torch generator when the loader starts, so runs
    seeded alike draw the same augmentations, while each worker draws a different stream.
    """
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class DataLoader(TorchDataLoader):
    """torch's DataLoader plus ``close_mosaic()``, which stops mosaic for every batch not yet sampled."""

    def close_mosaic(self) -> None:
        """Switch mosaic off in the batch sampler's flag and in the dataset (workers included)."""
        if hasattr(self.batch_sampler, "mosaic"):
            self.batch_sampler.mosaic = False
        if hasattr(self.dataset, "close_mosaic"):
            self.dataset.close_mosaic()
