"""Where datasets live, worker seeding, batch collation, and a DataLoader that can switch mosaic off."""

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import default_collate, get_worker_info

DATADIR_ENV = "YOLOX_DATADIR"
OWN_BATCH_FLAG = "_yolox_image_batch"  # set on tensors made by new_image_batch: only those are passed on uncopied


def get_yolox_datadir() -> Path:
    """The folder holding the datasets: ``$YOLOX_DATADIR`` when set, else ``./datasets``."""
    return Path(os.environ.get(DATADIR_ENV) or "datasets")


def resolve_data_dir(data_dir: str | None, subfolder: str) -> tuple[Path, str]:
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


def new_image_batch(count: int, input_hw: tuple[int, int]) -> torch.Tensor:
    """An uninitialised float32 ``[count, 3, H, W]`` tensor; in shared memory inside a loader worker.

    A batch built in shared memory crosses to the main process without a copy, as torch's own collate does.
    """
    shape = (count, 3, int(input_hw[0]), int(input_hw[1]))
    if get_worker_info() is None:
        batch = torch.empty(shape, dtype=torch.float32)
    else:
        nbytes = count * 3 * shape[2] * shape[3] * torch.float32.itemsize
        batch = torch.empty(0, dtype=torch.float32).set_(torch.UntypedStorage._new_shared(nbytes), 0, shape)
    setattr(batch, OWN_BATCH_FLAG, True)
    return batch


def batch_of_views(images: Sequence[Any]) -> torch.Tensor | None:
    """The ``new_image_batch`` tensor whose consecutive rows ``images`` are (see ``MosaicDetection.__getitems__``).

    None for anything else: a view of some other tensor (a dataset's cache, say) must be copied as usual.
    """
    base = getattr(images[0], "_base", None) if isinstance(images[0], torch.Tensor) else None
    if base is None or not getattr(base, OWN_BATCH_FLAG, False) or base.shape[0] != len(images):
        return None
    for position, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image._base is not base or image.shape != base.shape[1:] \
                or image.data_ptr() != base[position].data_ptr():
            return None
    return base


def collate_batch(batch: list[Sequence[Any]]) -> Any:
    """torch's ``default_collate``, except that images already laid out as one batch tensor are not copied."""
    images = batch_of_views([sample[0] for sample in batch]) if batch and isinstance(batch[0], tuple) else None
    if images is None:
        return default_collate(batch)
    return [images, *default_collate([sample[1:] for sample in batch])]


class DataLoader(TorchDataLoader):
    """torch's DataLoader plus ``close_mosaic()``, which stops mosaic for every batch not yet sampled.

    Unless a ``collate_fn`` is given it collates with ``collate_batch``, which takes the batch tensor that
    ``MosaicDetection`` fills in place instead of stacking a copy; the batches are the same.
    """

    def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
        collate_position = 5  # collate_fn's place among torch's positional parameters after ``dataset``
        if len(args) <= collate_position and kwargs.get("collate_fn") is None:
            kwargs["collate_fn"] = collate_batch
        super().__init__(dataset, *args, **kwargs)

    def close_mosaic(self) -> None:
        """Switch mosaic off in the batch sampler's flag and in the dataset (workers included)."""
        if hasattr(self.batch_sampler, "mosaic"):
            self.batch_sampler.mosaic = False
        if hasattr(self.dataset, "close_mosaic"):
            self.dataset.close_mosaic()
