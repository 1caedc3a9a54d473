"""The common base of the detection datasets (records, start-up checks, resizing, image caches) and the
official YOLOX dataset classes: ``Dataset``, ``CacheDataset``, ``ConcatDataset`` and ``MixConcatDataset``."""

import bisect
import os
import random
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from loguru import logger
from torch.utils.data import ConcatDataset as TorchConcatDataset
from torch.utils.data import Dataset as TorchDataset

from yolox.data.data_augment import letterbox_scale
from yolox.data.image_cache import (
    GIB,
    RAM_HEADROOM,
    DiskImageCache,
    available_memory_bytes,
    cache_threads,
    check_ram_for_cache,
    default_cache_dir,
    fill_ram_cache,
    validate_cache_type,
)
from yolox.utils.errors import UserError

# Leading bytes of the formats OpenCV reads; other files get one trial decode at start-up.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"GIF8", b"RIFF")
ERROR_EXAMPLES = 5
# Off while tools/check_data.py builds the datasets: it decodes every image itself and lists all problems.
_startup_image_check: ContextVar[bool] = ContextVar("startup_image_check", default=True)

Transform = Callable[[np.ndarray, np.ndarray, tuple[int, int]], tuple[np.ndarray, np.ndarray]]


@dataclass
class ImageRecord:
    """One image of a dataset: where it is, its size, and its boxes in original pixels."""

    image_id: int | str
    path: Path
    key: str  # the path relative to the dataset root: names the image in messages and in the disk cache
    height: int
    width: int
    boxes: np.ndarray  # float32 [N, 4] x1, y1, x2, y2, clipped to the image
    classes: np.ndarray  # int64 [N] contiguous class indices
    difficult: np.ndarray | None = None  # bool [N]; VOC's "difficult" flag, all False elsewhere

    def __post_init__(self) -> None:
        if self.difficult is None:
            self.difficult = np.zeros(len(self.boxes), dtype=bool)


class BoxReport:
    """Counts boxes that had to be clipped or dropped while loading, for one summarised warning."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.bad = 0
        self.dropped = 0
        self.example = ""
        self.empty = 0  # inside the image but of zero width or height: dropped
        self.empty_example = ""

    def clean(self, raw: np.ndarray, width: int, height: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        """Clip ``x1, y1, x2, y2`` boxes to the image; returns them and the mask of those with positive area."""
        finite = np.isfinite(raw).all(axis=1)
        boxes = np.where(finite[:, None], raw, 0.0)
        outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        negative = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        bad = ~finite | outside | negative
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
        keep = finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if bad.any():
            if not self.bad:
                first = int(np.flatnonzero(bad)[0])
                self.example = (f"{where}: box x1,y1,x2,y2 = {np.round(raw[first], 2).tolist()} "
                                f"in an image of {width}x{height}")
            self.bad += int(bad.sum())
            self.dropped += int((bad & ~keep).sum())
        empty = ~bad & ~keep
        if empty.any():
            if not self.empty:
                self.empty_example = f"{where}: box x1,y1,x2,y2 = {np.round(raw[np.flatnonzero(empty)[0]], 2).tolist()}"
            self.empty += int(empty.sum())
        return boxes.astype(np.float32), keep

    def warn(self) -> None:
        """Log one warning for all the bad boxes, with the first one as an example."""
        if self.bad:
            logger.warning(f"{self.source}: {self.bad} boxes had a negative size or reached outside their image; "
                           f"they were clipped to the image ({self.dropped} left empty and dropped). "
                           f"First example: {self.example}")
        if self.empty:
            logger.warning(f"{self.source}: {self.empty} boxes of zero width or height were dropped. "
                           f"First example: {self.empty_example}")


@contextmanager
def without_startup_image_check() -> Iterator[None]:
    """Build datasets without the start-up check of their image files (the caller checks them)."""
    token = _startup_image_check.set(False)
    try:
        yield
    finally:
        _startup_image_check.reset(token)


def image_problem(record: ImageRecord) -> str | None:
    """What is wrong with the image file of ``record`` after a full decode ("missing", ...), or None."""
    if not record.path.is_file():
        return "missing"
    img = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
    if img is None:
        return "cannot be decoded"
    if img.shape[:2] != (record.height, record.width):
        return f"is {img.shape[1]}x{img.shape[0]} but annotated as {record.width}x{record.height}"
    return None


def check_image_files(records: Sequence[ImageRecord], source: str) -> None:
    """Raise one UserError naming the missing or unreadable images (first few) before any training starts."""
    listed: dict[Path, set] = {}
    missing: list[str] = []
    unreadable: list[str] = []
    for record in records:
        folder = record.path.parent
        if folder not in listed:
            listed[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        if record.path.name not in listed[folder]:
            missing.append(str(record.path))
        elif not _looks_readable(record.path):
            unreadable.append(str(record.path))
    for problem, paths, fix in (("missing", missing, "restore them or remove them from the annotations"),
                                ("unreadable (not an image OpenCV can decode)", unreadable,
                                 "replace them or remove them from the annotations")):
        if paths:
            shown = "\n  ".join(paths[:ERROR_EXAMPLES])
            more = f"\n  ... and {len(paths) - ERROR_EXAMPLES} more" if len(paths) > ERROR_EXAMPLES else ""
            raise UserError(f"{len(paths)} images listed in {source} are {problem}:\n  {shown}{more}\n{fix}")


def _looks_readable(path: Path) -> bool:
    """Cheap check that a file is a decodable image: a known signature, else one trial decode."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    if head.startswith(IMAGE_SIGNATURES):
        return True
    return len(head) > 0 and cv2.imread(str(path)) is not None


class Dataset(TorchDataset):
    """The official base: a dataset that knows its input size and whether mosaic is on.

    Decorate ``__getitem__`` with :meth:`mosaic_getitem` to accept the ``(mosaic, index)`` items of
    ``YoloBatchSampler`` as well as plain indices.
    """

    def __init__(self, input_dimension: Sequence[int], mosaic: bool = True) -> None:
        super().__init__()
        self._input_dim = tuple(input_dimension[:2])
        self.enable_mosaic = mosaic

    @property
    def input_dim(self) -> tuple[int, ...]:
        """The (height, width) the images are prepared for."""
        return self._input_dim

    @staticmethod
    def mosaic_getitem(getitem_fn: Callable) -> Callable:
        """Wrap ``__getitem__`` so a ``(mosaic, index)`` item sets ``enable_mosaic`` and passes on the index."""

        @wraps(getitem_fn)
        def getitem(self: "Dataset", index: Any) -> Any:
            if not isinstance(index, int):
                self.enable_mosaic, index = bool(index[0]), int(index[1])
            return getitem_fn(self, index)

        return getitem


def cache_read_img(use_cache: bool = True) -> Callable:
    """Decorate a :class:`CacheDataset`'s ``read_img`` so it serves images from the cache when one was filled."""

    def decorate(read_img_fn: Callable) -> Callable:
        @wraps(read_img_fn)
        def read_img(self: "CacheDataset", index: int, use_cache: bool = use_cache) -> np.ndarray:
            if self.cache and use_cache and self.cache_filled:
                if self.cache_type == "ram":
                    return self.imgs[index].copy()
                return np.load(self.cache_file(index))
            return read_img_fn(self, index, use_cache)

        return read_img

    return decorate


class CacheDataset(Dataset, metaclass=ABCMeta):
    """The official base for datasets that cache their (resized) images in RAM or as ``.npy`` files.

    A subclass implements ``read_img(index, use_cache=True)`` (decorated with :func:`cache_read_img`) and calls
    this constructor last, once ``read_img`` works: with ``cache=True`` it fills the cache right away. The disk
    cache lives in ``<data_dir>/<cache_dir_name>/`` with one ``.npy`` per entry of ``path_filename``.
    """

    def __init__(self, input_dimension: Sequence[int], num_imgs: int | None = None,
                 data_dir: str | None = None, cache_dir_name: str | None = None,
                 path_filename: Sequence[str] | None = None, cache: bool = False, cache_type: str = "ram") -> None:
        super().__init__(input_dimension)
        self.cache = cache
        self.cache_type = validate_cache_type(cache_type) if cache else cache_type
        self.num_imgs = num_imgs
        self.data_dir = data_dir
        self.cache_dir_name = cache_dir_name
        self.path_filename = list(path_filename) if path_filename is not None else None
        self.imgs: list[np.ndarray] | None = None
        self.cache_filled = False
        if cache:
            self.cache_images(num_imgs=num_imgs, data_dir=data_dir, cache_dir_name=cache_dir_name,
                              path_filename=path_filename)

    @abstractmethod
    def read_img(self, index: int, use_cache: bool = True) -> np.ndarray:
        """The (resized) BGR image of ``index``."""

    def cache_file(self, index: int) -> str:
        """The ``.npy`` file of image ``index`` in the disk cache."""
        stem = os.path.splitext(self.path_filename[index])[0]
        return os.path.join(self.data_dir, self.cache_dir_name, f"{stem}.npy")

    def cal_cache_occupy(self, num_imgs: int) -> int:
        """Estimated bytes of the cached images, from up to 32 randomly chosen ones."""
        sample = random.sample(range(num_imgs), min(num_imgs, 32))
        per_image = np.mean([self.read_img(index, use_cache=False).nbytes for index in sample])
        return int(per_image * num_imgs)

    def cache_images(self, num_imgs: int | None = None, data_dir: str | None = None,
                     cache_dir_name: str | None = None, path_filename: Sequence[str] | None = None) -> None:
        """Fill the RAM cache (after checking free memory) or write the missing ``.npy`` files of the disk cache."""
        name = type(self).__name__
        if not num_imgs:
            raise UserError(f"{name}: caching needs num_imgs, the number of images (pass it to CacheDataset)")
        if self.cache_type == "disk" and (data_dir is None or cache_dir_name is None or path_filename is None):
            raise UserError(f"{name}: the disk cache needs data_dir, cache_dir_name and path_filename "
                            "(pass them to CacheDataset) or use cache_type='ram'")
        if self.cache_type == "ram":
            needed = self.cal_cache_occupy(num_imgs)
            available = available_memory_bytes()
            if needed > available * RAM_HEADROOM:
                raise UserError(f"caching the {num_imgs} images of {name} in RAM needs about {needed / GIB:.1f} GiB "
                                f"but only {available / GIB:.1f} GiB is free: use cache_type='disk' or no cache")
            with ThreadPoolExecutor(cache_threads()) as pool:
                self.imgs = list(pool.map(lambda index: self.read_img(index, use_cache=False), range(num_imgs)))
            logger.info(f"{name}: {num_imgs} images cached in RAM ({needed / GIB:.2f} GiB estimated)")
        else:
            missing = [index for index in range(num_imgs) if not os.path.isfile(self.cache_file(index))]

            def store(index: int) -> None:
                target = self.cache_file(index)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                np.save(target, self.read_img(index, use_cache=False))

            with ThreadPoolExecutor(cache_threads()) as pool:
                list(pool.map(store, missing))
            logger.info(f"{name}: disk cache in {os.path.join(data_dir, cache_dir_name)} "
                        f"({len(missing)} of {num_imgs} images written now)")
        self.cache_filled = True


class DetectionDataset(Dataset):
    """Images with boxes, resized to fit ``img_size``; subclasses parse an annotation format into records.

    ``pull_item`` gives the resized image and ``[N, 5]`` rows ``x1, y1, x2, y2, class`` in resized pixels;
    ``__getitem__`` passes them through ``preproc``. Images can be cached resized in RAM or on disk.
    """

    def __init__(self, img_size: tuple[int, int], preproc: Transform | None = None) -> None:
        super().__init__(img_size, mosaic=False)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.preproc = preproc
        self.records: list[ImageRecord] = []
        self.class_names: tuple[str, ...] = ()
        self._labels: list[np.ndarray] = []
        self.labelled_indices: list[int] = []  # images with at least one box: mixup draws its partner here
        self._ram_images: list[np.ndarray] | None = None
        self._disk_cache: DiskImageCache | None = None
        self._size_mismatch_warned = False
        # Training may replace an image that fails to decode by another one instead of stopping (per process).
        self.skip_bad_images = False
        self.skipped_images = 0
        self._bad_indices: set = set()

    # ------------------------------------------------------------------ set-up (called by subclasses)
    def _finish_setup(self, records: list[ImageRecord], class_names: Sequence[str], source: str,
                      cache: bool, cache_type: str, cache_dir: Path | None, data_dir: Path, name: str) -> None:
        """Check the images, scale the labels to the resized images and fill the cache when asked."""
        if not records:
            raise UserError(f"{source} lists no images: check the annotation file or image set")
        if _startup_image_check.get():
            check_image_files(records, source)
        self.records = records
        self.class_names = tuple(class_names)
        self._labels = [self._resized_labels(record) for record in records]
        self.labelled_indices = [index for index, labels in enumerate(self._labels) if len(labels)]
        if cache:
            self._build_cache(validate_cache_type(cache_type), cache_dir or default_cache_dir(data_dir, name), source)

    def _resized_labels(self, record: ImageRecord) -> np.ndarray:
        """``[N, 5]`` float32 rows ``x1, y1, x2, y2, class`` in the pixels of the resized image (read-only)."""
        ratio = letterbox_scale((record.height, record.width), self.img_size)
        labels = np.empty((len(record.boxes), 5), dtype=np.float32)
        labels[:, :4] = record.boxes * ratio
        labels[:, 4] = record.classes
        labels.flags.writeable = False
        return labels

    def _build_cache(self, cache_type: str, cache_dir: Path, source: str) -> None:
        """Fill the RAM cache or bring the disk cache up to date."""
        if cache_type == "ram":
            check_ram_for_cache([self.resized_hw(index) for index in range(len(self))], source)
            self._ram_images = fill_ram_cache(len(self), self._read_resized, source)
        else:
            self._disk_cache = DiskImageCache(cache_dir, self.img_size, [r.path for r in self.records],
                                              [r.key for r in self.records])
            self._disk_cache.sync(self._read_resized, source)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.records)

    @property
    def input_dim(self) -> tuple[int, int]:
        """The (height, width) every image is resized to fit."""
        return self.img_size

    @property
    def _classes(self) -> tuple[str, ...]:
        """The class names (the official attribute name)."""
        return self.class_names

    def resized_hw(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index`` after resizing to fit ``img_size``."""
        record = self.records[index]
        ratio = letterbox_scale((record.height, record.width), self.img_size)
        return int(record.height * ratio), int(record.width * ratio)

    def load_anno(self, index: int) -> np.ndarray:
        """Read-only ``[N, 5]`` rows ``x1, y1, x2, y2, class`` of image ``index`` in resized pixels."""
        return self._labels[index]

    def ground_truth(self, index: int) -> dict[str, np.ndarray]:
        """Boxes (original pixels, x1 y1 x2 y2), class indices and difficult flags of image ``index``."""
        record = self.records[index]
        return {"boxes": record.boxes, "classes": record.classes, "difficult": record.difficult}

    def load_image(self, index: int) -> np.ndarray:
        """The original BGR image of ``index``; a UserError names the file when it cannot be decoded."""
        path = self.records[index].path
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise UserError(f"image {path} could not be read (not a complete image OpenCV can decode): replace it "
                            f"or remove it from the annotations; training can skip such images with the exp option "
                            f"skip_bad_images True, and tools/check_data.py -f <exp> lists every bad image")
        return img

    def _read_resized(self, index: int) -> np.ndarray:
        """Decode image ``index`` and resize it to fit ``img_size`` (a fresh array).

        The size comes from the annotation, which the boxes refer to; an image of another size is
        stretched to it, with one warning per process, rather than stopping training in a worker.
        """
        img = self.load_image(index)
        record = self.records[index]
        new_h, new_w = self.resized_hw(index)
        if img.shape[:2] != (record.height, record.width) and not self._size_mismatch_warned:
            self._size_mismatch_warned = True
            logger.warning(f"image {record.path} is {img.shape[1]}x{img.shape[0]} but its annotation says "
                           f"{record.width}x{record.height}; it is stretched to the annotated size so the boxes "
                           f"stay aligned (later mismatches are not reported): check the annotation")
        if (new_h, new_w) != img.shape[:2]:
            img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return img

    def load_resized_img(self, index: int) -> np.ndarray:
        """The resized image of ``index``; from the RAM cache it is shared and read-only, so copy to modify."""
        if self._ram_images is not None:
            return self._ram_images[index]
        if self._disk_cache is not None:
            return self._disk_cache.load(index)
        return self._read_resized(index)

    def pull_item(self, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int | str]:
        """(resized image you may modify, labels copy, (orig_h, orig_w), image id) of image ``index``.

        With ``skip_bad_images`` an image that fails to decode is logged, counted and replaced by the next
        good one, so the batch keeps its size.
        """
        index, img = self._first_decodable(index)
        if not img.flags.writeable:
            img = img.copy()
        record = self.records[index]
        return img, self._labels[index].copy(), (record.height, record.width), record.image_id

    def _first_decodable(self, index: int) -> tuple[int, np.ndarray]:
        """``(index, resized image)`` of ``index`` or, when skipping bad images, of the next one that decodes."""
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate in self._bad_indices:
                continue
            try:
                return candidate, self.load_resized_img(candidate)
            except UserError:
                if not self.skip_bad_images:
                    raise
            self._bad_indices.add(candidate)
            self.skipped_images += 1
            logger.warning(f"skipped unreadable image {self.records[candidate].path} ({self.skipped_images} skipped "
                           f"so far by this process); a neighbouring image takes its place")
        raise UserError(f"none of the {len(self)} images of this dataset could be decoded: check the image folder")

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int | str]:
        img, target, img_info, img_id = self.pull_item(index)
        if self.preproc is not None:
            img, target = self.preproc(img, target, self.img_size)
        return img, target, img_info, img_id



def _locate(cumulative_sizes: Sequence[int], index: int) -> tuple[int, int]:
    """(dataset number, index inside it) of a concatenated ``index``; negative indices count from the end."""
    total = cumulative_sizes[-1]
    if not -total <= index < total:
        raise IndexError(f"index {index} is out of range for a concatenation of {total} items")
    index %= total
    dataset_index = bisect.bisect_right(cumulative_sizes, index)
    start = cumulative_sizes[dataset_index - 1] if dataset_index else 0
    return dataset_index, index - start


class ConcatDataset(TorchConcatDataset):
    """Several detection datasets as one (for example a COCO-format and a VOC-format set of the same classes).

    Besides the items it forwards ``pull_item`` and everything the mosaic wrapper and the evaluators read
    (``load_anno``, ``load_resized_img``, ``resized_hw``, ``records``, ``labelled_indices``, ``class_names``),
    so ``MosaicDetection(ConcatDataset([...]))`` trains on all of them. ``input_dim`` is the first dataset's.
    """

    def __init__(self, datasets: Sequence[TorchDataset]) -> None:
        super().__init__(datasets)
        first = self.datasets[0]
        if hasattr(first, "input_dim"):
            self._input_dim = first.input_dim
            self.input_dim = first.input_dim
        named = [(type(d).__name__, tuple(d.class_names)) for d in self.datasets if getattr(d, "class_names", None)]
        if len({names for _, names in named}) > 1:
            listing = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in named)
            raise UserError(f"the datasets to concatenate have different class lists ({listing}): give them the "
                            "same class_names in the same order, so one index means one class")

    def _dataset_and_index(self, index: int) -> tuple[Any, int]:
        dataset_index, sample_index = _locate(self.cumulative_sizes, index)
        return self.datasets[dataset_index], sample_index

    def pull_item(self, index: int) -> Any:
        """The un-augmented item of the dataset holding ``index``."""
        dataset, sample_index = self._dataset_and_index(index)
        return dataset.pull_item(sample_index)

    def load_anno(self, index: int) -> np.ndarray:
        """The labels of ``index`` (rows x1, y1, x2, y2, class in resized pixels)."""
        dataset, sample_index = self._dataset_and_index(index)
        return dataset.load_anno(sample_index)

    def load_resized_img(self, index: int) -> np.ndarray:
        """The resized image of ``index``."""
        dataset, sample_index = self._dataset_and_index(index)
        return dataset.load_resized_img(sample_index)

    def resized_hw(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index`` after resizing."""
        dataset, sample_index = self._dataset_and_index(index)
        return dataset.resized_hw(sample_index)

    def ground_truth(self, index: int) -> dict[str, np.ndarray]:
        """Boxes, classes and difficult flags of image ``index`` in original pixels."""
        dataset, sample_index = self._dataset_and_index(index)
        return dataset.ground_truth(sample_index)

    @property
    def records(self) -> list[ImageRecord]:
        """The image records of all datasets, in order."""
        return [record for dataset in self.datasets for record in dataset.records]

    @property
    def labelled_indices(self) -> list[int]:
        """Indices (in the concatenation) of the images that have at least one box."""
        starts = [0] + list(self.cumulative_sizes[:-1])
        return [start + index for start, dataset in zip(starts, self.datasets) for index in dataset.labelled_indices]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names shared by the datasets (empty when none declares them)."""
        for dataset in self.datasets:
            if getattr(dataset, "class_names", None):
                return tuple(dataset.class_names)
        return ()


class MixConcatDataset(TorchConcatDataset):
    """Concatenation of datasets whose items may be ``(mosaic, index)`` (or ``(input_dim, index, mosaic)``)
    tuples, such as ``MosaicDetection`` wrappers: the tuple goes on with the index inside the chosen dataset."""

    def __init__(self, datasets: Sequence[TorchDataset]) -> None:
        super().__init__(datasets)
        if hasattr(self.datasets[0], "input_dim"):
            self._input_dim = self.datasets[0].input_dim
            self.input_dim = self.datasets[0].input_dim

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            dataset_index, sample_index = _locate(self.cumulative_sizes, int(index))
            return self.datasets[dataset_index][sample_index]
        item = list(index)
        dataset_index, item[1] = _locate(self.cumulative_sizes, int(item[1]))
        return self.datasets[dataset_index][tuple(item)]
