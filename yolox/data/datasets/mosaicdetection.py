"""Mosaic + random affine + mixup training wrapper around a detection dataset."""

import math
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from yolox.data.augment_stream import sample_rng
from yolox.data.data_augment import (
    PAD_VALUE,
    Rng,
    TrainTransform,
    random_affine_matrix,
    transform_boxes,
    write_chw_float,
)
from yolox.data.dataloading import new_image_batch
from yolox.data.datasets.datasets_wrapper import DetectionDataset, Transform

SAMPLE_MARGIN = 2  # pixels kept around the warp's source region so bilinear sampling sees true neighbours

Item = int | tuple[bool, int] | tuple[bool, int, int]

_DECODE_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads) -> pool of that process


def load_images(dataset: DetectionDataset, indices: Sequence[int], threads: int = 1) -> list[np.ndarray]:
    """``dataset.load_resized_img`` of each index, in order, decoded on up to ``threads`` threads.

    OpenCV releases the GIL while decoding, so on a multi-core machine the images of one mosaic decode
    side by side; the arrays are the same as when decoded one after the other.
    """
    if threads <= 1 or len(indices) <= 1:
        return [dataset.load_resized_img(index) for index in indices]
    key = (os.getpid(), threads)  # a pool made before a fork has no threads in the child: one per process
    if key not in _DECODE_POOLS:
        _DECODE_POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="yolox-decode")
    return list(_DECODE_POOLS[key].map(dataset.load_resized_img, indices))


def mosaic_tile_placement(slot: int, center_x: int, center_y: int, tile_w: int, tile_h: int,
                          canvas_w: int, canvas_h: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Where tile ``slot`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) lands on the canvas.

    The four tiles meet at ``(center_x, center_y)``. Returns the canvas rectangle ``(x1, y1, x2, y2)`` it
    covers and the tile pixel ``(x, y)`` copied to its top-left corner (tiles are cut at the canvas edge).
    """
    left = slot in (0, 2)
    top = slot in (0, 1)
    x1 = max(center_x - tile_w, 0) if left else center_x
    x2 = center_x if left else min(center_x + tile_w, canvas_w)
    y1 = max(center_y - tile_h, 0) if top else center_y
    y2 = center_y if top else min(center_y + tile_h, canvas_h)
    source_x = tile_w - (x2 - x1) if left else 0
    source_y = tile_h - (y2 - y1) if top else 0
    return (x1, y1, x2, y2), (source_x, source_y)


def source_window(matrix: np.ndarray, target_hw: tuple[int, int], source_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part ``(x1, y1, x2, y2)`` of the source that an affine warp onto ``target_hw`` can sample."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [target_hw[1], 0, 1], [target_hw[1], target_hw[0], 1], [0, target_hw[0], 1]],
                        dtype=np.float64)
    mapped = corners @ inverse.T
    x1 = max(math.floor(mapped[:, 0].min()) - SAMPLE_MARGIN, 0)
    y1 = max(math.floor(mapped[:, 1].min()) - SAMPLE_MARGIN, 0)
    x2 = min(math.ceil(mapped[:, 0].max()) + SAMPLE_MARGIN, source_hw[1])
    y2 = min(math.ceil(mapped[:, 1].max()) + SAMPLE_MARGIN, source_hw[0])
    return x1, y1, max(x2, x1), max(y2, y1)


class MosaicDetection(Dataset):
    """Training wrapper: mosaic of 4 images on a 2x canvas, one random affine warp, mixup, then ``preproc``.

    Only the part of the mosaic canvas the warp can see is assembled, and tiles outside it are never
    decoded; the result is that of warping the whole canvas (up to OpenCV rounding sample positions to
    1/32 pixel). Items may be plain indices or the ``(mosaic, index)`` pairs of ``YoloBatchSampler``, or
    its ``(mosaic, index, draw_seed)`` triples: then every draw of the item (mosaic, mixup, affine, HSV, flip)
    comes from a generator seeded with ``draw_seed``, so the item is the same in any worker or process;
    otherwise the draws come from the global ``random`` module, as in the official YOLOX.
    ``close_mosaic()`` also reaches loader workers, since the switch lives in shared memory.
    ``decode_threads`` threads decode the images of one item; None means OpenCV's thread count in the main
    process and 1 inside loader workers (the workers already decode side by side).
    """

    def __init__(self, dataset: DetectionDataset, img_size: tuple[int, int], mosaic: bool = True,
                 preproc: Transform | None = None, degrees: float = 10.0, translate: float = 0.1,
                 mosaic_scale: Sequence[float] = (0.5, 1.5), mixup_scale: Sequence[float] = (0.5, 1.5),
                 shear: float = 2.0, enable_mixup: bool = True, mosaic_prob: float = 1.0,
                 mixup_prob: float = 1.0, decode_threads: int | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.input_dim = (int(img_size[0]), int(img_size[1]))
        self.preproc = preproc
        self.degrees = degrees
        self.translate = translate
        self.scale = tuple(mosaic_scale)
        self.mixup_scale = tuple(mixup_scale)
        self.shear = shear
        self.enable_mixup = enable_mixup
        self.mosaic_prob = mosaic_prob
        self.mixup_prob = mixup_prob
        if decode_threads is not None and decode_threads < 1:
            raise ValueError(f"MosaicDetection decode_threads must be at least 1 (or None for automatic), "
                             f"got {decode_threads}")
        self.decode_threads = decode_threads
        self._mosaic_switch = torch.tensor(bool(mosaic)).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def enable_mosaic(self) -> bool:
        """Whether mosaic may still be applied (False after ``close_mosaic``)."""
        return bool(self._mosaic_switch)

    def close_mosaic(self) -> None:
        """Stop mosaic and mixup for all later items, in this process and in the loader workers."""
        self._mosaic_switch.fill_(False)

    def _decode_thread_count(self) -> int:
        """Threads for decoding one item's images (see ``decode_threads``)."""
        if self.decode_threads is not None:
            return self.decode_threads
        return 1 if get_worker_info() is not None else max(cv2.getNumThreads(), 1)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The wrapped dataset's class names."""
        return self.dataset.class_names

    def __getitem__(self, item: Item) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int | str]:
        rng = item_rng(item)
        img, labels, img_info, img_id = self._pull_augmented(item, rng)
        if isinstance(self.preproc, TrainTransform):
            img, labels = self.preproc(img, labels, self.input_dim, rng=rng)
        elif self.preproc is not None:
            img, labels = self.preproc(img, labels, self.input_dim)
        return img, labels, img_info, img_id

    def __getitems__(self, items: Sequence[Item]) -> list[tuple[object, np.ndarray, tuple[int, int], int | str]]:
        """The DataLoader's batched fetch: the items of ``self[item]``, in order, with the same random draws.

        With a ``TrainTransform`` the images are written straight into one float32 batch tensor (in shared
        memory inside a loader worker) and returned as its views, which ``collate_batch`` hands on without
        copying; the values are those of ``self[item]``.
        """
        if not isinstance(self.preproc, TrainTransform):
            return [self[item] for item in items]
        batch = new_image_batch(len(items), self.input_dim)
        planes = batch.numpy()
        samples = []
        for position, item in enumerate(items):
            rng = item_rng(item)
            img, labels, img_info, img_id = self._pull_augmented(item, rng)
            img, labels = self.preproc.augment(img, labels, self.input_dim, rng=rng)
            write_chw_float(img, planes[position])
            samples.append((batch[position], labels, img_info, img_id))
        return samples

    def _pull_augmented(self, item: Item, rng: Rng) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int | str]:
        """The ``uint8`` image and ``x1, y1, x2, y2, class`` labels of ``item`` before ``preproc``.

        All random draws (mosaic, then mixup) come first, in a fixed order, from ``rng`` (None: the global
        ``random`` module); then every image they need is decoded at once (side by side where
        ``decode_threads`` allows) and the pixels are put together.
        """
        sampler_mosaic, index = (item[0], item[1]) if isinstance(item, tuple) else (True, item)
        draw = rng or random
        if not (sampler_mosaic and self.enable_mosaic and draw.random() < self.mosaic_prob):
            return self.dataset.pull_item(index)
        mosaic = self._plan_mosaic(index, rng)
        mixup = None
        if self.enable_mixup and len(mosaic.labels) and draw.random() < self.mixup_prob:
            mixup = self._plan_mixup(mosaic.labels, rng)
        wanted = [piece.index for piece in mosaic.pieces]
        if mixup is not None and mixup.visible:
            wanted.append(mixup.partner)
        images = load_images(self.dataset, wanted, self._decode_thread_count())
        img = self._render_mosaic(mosaic, images[:len(mosaic.pieces)])
        if mixup is None:
            return img, mosaic.labels, self.input_dim, self.dataset.records[index].image_id
        img = self._render_mixup(img, mixup, images[-1] if mixup.visible else None)
        return img, mixup.labels, self.input_dim, self.dataset.records[index].image_id

    def _plan_mosaic(self, index: int, rng: Rng = None) -> "MosaicPlan":
        """Draw a mosaic of four images around a random centre on a 2x canvas, warped once to the input size.

        Only the part of the canvas the warp can see is planned; tiles outside it are left out.
        """
        height, width = self.input_dim
        canvas_h, canvas_w = 2 * height, 2 * width
        draw = rng or random
        center_y = int(draw.uniform(0.5 * height, 1.5 * height))
        center_x = int(draw.uniform(0.5 * width, 1.5 * width))
        indices = [index] + [draw.randint(0, len(self.dataset) - 1) for _ in range(3)]
        matrix, _ = random_affine_matrix((canvas_h, canvas_w), self.input_dim, self.degrees, self.translate,
                                         self.scale, self.shear, rng=rng)
        window = source_window(matrix, self.input_dim, (canvas_h, canvas_w))
        win_x1, win_y1, win_x2, win_y2 = window
        pieces, tile_labels = [], []
        for slot, tile_index in enumerate(indices):
            tile_h, tile_w = self.dataset.resized_hw(tile_index)
            (x1, y1, x2, y2), (source_x, source_y) = mosaic_tile_placement(
                slot, center_x, center_y, tile_w, tile_h, canvas_w, canvas_h)
            cut_x1, cut_y1, cut_x2, cut_y2 = max(x1, win_x1), max(y1, win_y1), min(x2, win_x2), min(y2, win_y2)
            if cut_x1 >= cut_x2 or cut_y1 >= cut_y2:
                continue  # the warp never samples this tile: it is not decoded
            pieces.append(MosaicPiece(
                tile_index,
                (slice(cut_y1 - win_y1, cut_y2 - win_y1), slice(cut_x1 - win_x1, cut_x2 - win_x1)),
                (slice(source_y + cut_y1 - y1, source_y + cut_y2 - y1),
                 slice(source_x + cut_x1 - x1, source_x + cut_x2 - x1))))
            labels = self.dataset.load_anno(tile_index)
            if len(labels):
                moved = labels.copy()
                moved[:, 0:4:2] += x1 - source_x
                moved[:, 1:4:2] += y1 - source_y
                np.clip(moved[:, 0:4:2], x1, x2, out=moved[:, 0:4:2])
                np.clip(moved[:, 1:4:2], y1, y2, out=moved[:, 1:4:2])
                tile_labels.append(moved)
        if tile_labels:
            labels = np.concatenate(tile_labels)
            boxes, keep = transform_boxes(labels[:, :4], matrix, self.input_dim)
            labels = labels[keep]
            labels[:, :4] = boxes[keep]
        else:
            labels = np.zeros((0, 5), dtype=np.float32)
        return MosaicPlan(matrix, window, pieces, labels)

    def _render_mosaic(self, plan: "MosaicPlan", tiles: Sequence[np.ndarray]) -> np.ndarray:
        """Assemble the visible window of the mosaic canvas from the decoded ``tiles`` and warp it."""
        height, width = self.input_dim
        win_x1, win_y1, win_x2, win_y2 = plan.window
        # OpenCV warps 4-channel images about twice as fast as 3-channel ones, with the same values in each
        # channel: the window gets a spare fourth channel, dropped after the warp.
        window = np.full((win_y2 - win_y1, win_x2 - win_x1, 4), PAD_VALUE, dtype=np.uint8)
        for piece, tile in zip(plan.pieces, tiles):
            cv2.cvtColor(tile[piece.tile_region], cv2.COLOR_BGR2BGRA, dst=window[piece.window_region])
        window_matrix = plan.matrix.copy()
        window_matrix[:, 2] += plan.matrix[:, :2] @ np.array([win_x1, win_y1], dtype=np.float64)
        warped = cv2.warpAffine(window, window_matrix, dsize=(width, height), borderValue=(PAD_VALUE,) * 4)
        return cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR)

    def _plan_mixup(self, labels: np.ndarray, rng: Rng = None) -> "MixupPlan | None":
        """Draw the mixup partner (a random labelled image), its scale jitter, flip and crop; None if none."""
        candidates = self.dataset.labelled_indices
        if not candidates:
            return None
        height, width = self.input_dim
        draw = rng or random
        jitter = draw.uniform(*self.mixup_scale)
        flip = draw.random() > 0.5
        partner = draw.choice(candidates)
        partner_h, partner_w = self.dataset.resized_hw(partner)
        # The partner is letterboxed into an input-sized frame, and that frame is scaled by ``jitter``.
        frame_h, frame_w = int(height * jitter), int(width * jitter)
        ratio = min(height / partner_h, width / partner_w) * jitter
        content_w, content_h = min(int(partner_w * ratio), frame_w), min(int(partner_h * ratio), frame_h)
        offset_y = draw.randint(0, frame_h - height - 1) if frame_h > height else 0
        offset_x = draw.randint(0, frame_w - width - 1) if frame_w > width else 0
        content_x = frame_w - content_w if flip else 0  # where the content sits in the (flipped) frame
        paste = (max(content_x - offset_x, 0), max(-offset_y, 0),
                 min(content_x + content_w - offset_x, width), min(content_h - offset_y, height))
        partner_labels = self.dataset.load_anno(partner).copy()
        boxes = partner_labels[:, :4] * ratio
        if flip:
            boxes[:, [0, 2]] = frame_w - boxes[:, [2, 0]]
        boxes[:, 0::2] -= offset_x
        boxes[:, 1::2] -= offset_y
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        partner_labels[:, :4] = boxes
        return MixupPlan(partner, flip, (content_w, content_h), (offset_x - content_x, offset_y), paste,
                         np.concatenate([labels, partner_labels[keep]]))

    def _render_mixup(self, img: np.ndarray, plan: "MixupPlan", partner_img: np.ndarray | None) -> np.ndarray:
        """Blend ``img`` 50/50 with the planned crop of the (resized, maybe flipped) partner image."""
        # Outside the partner's content the layer is padding: the blend there is img / 2 + 114 / 2.
        blended = cv2.convertScaleAbs(img, alpha=0.5, beta=PAD_VALUE * 0.5)
        if partner_img is None:
            return blended
        content_w, content_h = plan.content_wh
        if partner_img.shape[:2] != (content_h, content_w):
            partner_img = cv2.resize(partner_img, (content_w, content_h), interpolation=cv2.INTER_LINEAR)
        paste_x1, paste_y1, paste_x2, paste_y2 = plan.paste
        shift_x, shift_y = plan.content_shift
        rows = slice(paste_y1 + shift_y, paste_y2 + shift_y)
        if plan.flip:  # mirror only the crop: columns c of the flipped content are content_w - 1 - c unflipped
            partner_part = cv2.flip(partner_img[rows, content_w - paste_x2 - shift_x:content_w - paste_x1 - shift_x], 1)
        else:
            partner_part = partner_img[rows, paste_x1 + shift_x:paste_x2 + shift_x]
        region = (slice(paste_y1, paste_y2), slice(paste_x1, paste_x2))
        blended[region] = cv2.addWeighted(img[region], 0.5, partner_part, 0.5, 0.0)
        return blended


def item_rng(item: Item) -> Rng:
    """The generator owned by a ``(mosaic, index, draw_seed)`` item; None (the global ``random``) for others."""
    if isinstance(item, tuple) and len(item) > 2:
        return sample_rng(int(item[2]))
    return None


@dataclass
class MosaicPiece:
    """One visible tile of a planned mosaic: which image, where it lands in the window, which part of it."""

    index: int
    window_region: tuple[slice, slice]
    tile_region: tuple[slice, slice]


@dataclass
class MosaicPlan:
    """The random draws of one mosaic: the affine map, the canvas window it sees, the pieces and labels."""

    matrix: np.ndarray
    window: tuple[int, int, int, int]
    pieces: list[MosaicPiece]
    labels: np.ndarray


@dataclass
class MixupPlan:
    """The random draws of one mixup: partner, flip, content size, crop offset, pasted region and labels."""

    partner: int
    flip: bool
    content_wh: tuple[int, int]
    content_shift: tuple[int, int]  # input pixel (x, y) shows pixel (x + shift_x, y + shift_y) of the content
    paste: tuple[int, int, int, int]
    labels: np.ndarray

    @property
    def visible(self) -> bool:
        """Whether any of the partner's content lands inside the input (else only padding is blended)."""
        return self.paste[0] < self.paste[2] and self.paste[1] < self.paste[3]
