"""Caches of resized training images: in RAM (checked against free memory) or as .npy files on disk.

The disk cache keeps a manifest of every source image's size and modification time and of the input
size, so an edited, added or removed image, or another input size, rebuilds exactly what went stale.
"""

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from loguru import logger

from yolox.utils.errors import UserError
from yolox.utils.files import atomic_path, write_json_atomically

CACHE_TYPES = ("ram", "disk")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
RAM_HEADROOM = 0.8  # leave a fifth of the free memory to the model, the workers and the OS
GIB = 1024 ** 3

ImageLoader = Callable[[int], np.ndarray]


def cache_threads() -> int:
    """Threads used to decode and resize images while filling a cache (OpenCV releases the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def available_memory_bytes() -> int:
    """Memory the system can still hand out without swapping (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # systems without the "available pages" query: count all memory
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_ram_for_cache(resized_hw: Sequence[tuple[int, int]], dataset_name: str) -> int:
    """Return the bytes a RAM cache of these resized images needs; UserError when memory is short."""
    needed = int(sum(height * width * 3 for height, width in resized_hw))
    available = available_memory_bytes()
    if needed > available * RAM_HEADROOM:
        raise UserError(
            f"caching the {len(resized_hw)} images of {dataset_name} in RAM needs about {needed / GIB:.1f} GiB but "
            f"only {available / GIB:.1f} GiB is free (the cache may use {RAM_HEADROOM:.0%} of it): use --cache disk, "
            f"a smaller input_size, or train without --cache")
    return needed


def fill_ram_cache(count: int, load_resized: ImageLoader, dataset_name: str) -> list[np.ndarray]:
    """Decode and resize every image once, in threads; the arrays are made read-only to guard the cache."""
    logger.info(f"caching {count} resized images of {dataset_name} in RAM")
    with ThreadPoolExecutor(cache_threads()) as pool:
        images = list(pool.map(load_resized, range(count)))
    for img in images:
        img.flags.writeable = False
    return images


class DiskImageCache:
    """Resized images stored as ``.npy`` files beside a manifest that says what they were made from."""

    def __init__(self, cache_dir: Path, img_size: tuple[int, int], image_paths: Sequence[Path],
                 keys: Sequence[str]) -> None:
        self.cache_dir = Path(cache_dir)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.image_paths = list(image_paths)
        self.keys = list(keys)
        self.files = [self.cache_dir / (hashlib.sha1(key.encode("utf-8")).hexdigest()[:24] + ".npy") for key in keys]

    def _read_manifest(self) -> dict[str, list[int]]:
        """Entries of the current manifest (key -> [size, mtime_ns]); empty when absent or for another size."""
        path = self.cache_dir / MANIFEST_NAME
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if manifest.get("version") != MANIFEST_VERSION or manifest.get("img_size") != list(self.img_size):
            return {}
        return manifest.get("entries", {})

    def _write_manifest(self, entries: dict[str, list[int]]) -> None:
        """Replace the manifest atomically so a crash never leaves a half-written one."""
        manifest = {"version": MANIFEST_VERSION, "img_size": list(self.img_size), "entries": entries}
        write_json_atomically(self.cache_dir / MANIFEST_NAME, manifest, indent=None)

    def sync(self, load_resized: ImageLoader, dataset_name: str) -> int:
        """Rebuild the stale or missing entries and delete those of images no longer listed; returns rebuilt count."""
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the disk cache folder {self.cache_dir} ({err.strerror}): "
                            f"make its parent writable or use --cache ram") from None
        old_entries = self._read_manifest()
        entries: dict[str, list[int]] = {}
        stale: list[int] = []
        for index, (key, path, cache_file) in enumerate(zip(self.keys, self.image_paths, self.files)):
            stat = path.stat()
            fingerprint = [stat.st_size, stat.st_mtime_ns]
            entries[key] = fingerprint
            if old_entries.get(key) != fingerprint or not cache_file.is_file():
                stale.append(index)
        current = {file.name for file in self.files}
        for leftover in self.cache_dir.glob("*.npy"):
            if leftover.name not in current:
                leftover.unlink()
        if stale:
            logger.info(f"writing {len(stale)} resized images of {dataset_name} to the disk cache {self.cache_dir}")
            with ThreadPoolExecutor(cache_threads()) as pool:
                list(pool.map(lambda index: self._store(index, load_resized(index)), stale))
        self._write_manifest(entries)
        return len(stale)

    def _store(self, index: int, img: np.ndarray) -> None:
        """Write one resized image through a temporary file, so readers never see a partial array."""
        with atomic_path(self.files[index]) as temporary, open(temporary, "wb") as stream:
            np.save(stream, img)

    def load(self, index: int) -> np.ndarray:
        """The cached resized image of ``index``."""
        return np.load(self.files[index])


def default_cache_dir(data_dir: Path, name: str) -> Path:
    """Where a dataset's disk cache lives unless told otherwise: beside its images."""
    return Path(data_dir) / "img_resized_cache" / name


def validate_cache_type(cache_type: str | None) -> str:
    """Return ``cache_type`` when it names a cache kind, else raise a UserError listing the kinds."""
    if cache_type not in CACHE_TYPES:
        raise UserError(f"unknown cache type {cache_type!r}: use one of {', '.join(CACHE_TYPES)}")
    return cache_type
