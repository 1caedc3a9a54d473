"""Mosaic + random affine + mixup training wrapper around a detection dataset."""

import math
import random
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from yolox.data.data_augment import PAD_VALUE, random_affine_matrix, transform_boxes
from yolox.data.datasets.datasets_wrapper import DetectionDataset, Transform

SAMPLE_MARGIN = 2  # pixels kept around the warp's source region so bilinear sampling sees true neighbours

Item = Union[int, Tuple[bool, int]]


def mosaic_tile_placement(slot: int, center_x: int, center_y: int, tile_w: int, tile_h: int,
                          canvas_w: int, canvas_h: int) -> Tuple[Tuple[int, int, int, int], Tuple[int, int]]:
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


def source_window(matrix: np.ndarray, target_hw: Tuple[int, int], source_hw: Tuple[int, int]) -> Tuple[int, int, int, int]:
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
    1/32 pixel). Items may be plain indices or the ``(mosaic, index)`` pairs of ``YoloBatchSampler``.
    ``close_mosaic()`` also reaches loader workers, since the switch lives in shared memory.
    """

    def __init__(self, dataset: DetectionDataset, img_size: Tuple[int, int], mosaic: bool = True,
                 preproc: Optional[Transform] = None, degrees: float = 10.0, translate: float = 0.1,
                 mosaic_scale: Sequence[float] = (0.5, 1.5), mixup_scale: Sequence[float] = (0.5, 1.5),
                 shear: float = 2.0, enable_mixup: bool = True, mosaic_prob: float = 1.0,
                 mixup_prob: float = 1.0) -> None:
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

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The wrapped dataset's class names."""
        return self.dataset.class_names

    def __getitem__(self, item: Item) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int], Union[int, str]]:
        sampler_mosaic, index = item if isinstance(item, tuple) else (True, item)
        if sampler_mosaic and self.enable_mosaic and random.random() < self.mosaic_prob:
            img, labels = self._mosaic(index)
            if self.enable_mixup and len(labels) and random.random() < self.mixup_prob:
                img, labels = self._mixup(img, labels)
            img_info = self.input_dim
            img_id = self.dataset.records[index].image_id
        else:
            img, labels, img_info, img_id = self.dataset.pull_item(index)
        if self.preproc is not None:
            img, labels = self.preproc(img, labels, self.input_dim)
        return img, labels, img_info, img_id

    def _mosaic(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Four images around a random centre on a 2x canvas, warped once to the input size."""
        height, width = self.input_dim
        canvas_h, canvas_w = 2 * height, 2 * width
        center_y = int(random.uniform(0.5 * height, 1.5 * height))
        center_x = int(random.uniform(0.5 * width, 1.5 * width))
        indices = [index] + [random.randint(0, len(self.dataset) - 1) for _ in range(3)]
        matrix, _ = random_affine_matrix((canvas_h, canvas_w), self.input_dim, self.degrees, self.translate,
                                         self.scale, self.shear)
        win_x1, win_y1, win_x2, win_y2 = source_window(matrix, self.input_dim, (canvas_h, canvas_w))
        window = np.full((win_y2 - win_y1, win_x2 - win_x1, 3), PAD_VALUE, dtype=np.uint8)
        tile_labels = []
        for slot, tile_index in enumerate(indices):
            tile_h, tile_w = self.dataset.resized_hw(tile_index)
            (x1, y1, x2, y2), (source_x, source_y) = mosaic_tile_placement(
                slot, center_x, center_y, tile_w, tile_h, canvas_w, canvas_h)
            cut_x1, cut_y1, cut_x2, cut_y2 = max(x1, win_x1), max(y1, win_y1), min(x2, win_x2), min(y2, win_y2)
            if cut_x1 >= cut_x2 or cut_y1 >= cut_y2:
                continue  # the warp never samples this tile: skip decoding it
            tile = self.dataset.load_resized_img(tile_index)
            window[cut_y1 - win_y1:cut_y2 - win_y1, cut_x1 - win_x1:cut_x2 - win_x1] = tile[
                source_y + cut_y1 - y1:source_y + cut_y2 - y1, source_x + cut_x1 - x1:source_x + cut_x2 - x1]
            labels = self.dataset.load_anno(tile_index)
            if len(labels):
                moved = labels.copy()
                moved[:, 0:4:2] += x1 - source_x
                moved[:, 1:4:2] += y1 - source_y
                np.clip(moved[:, 0:4:2], x1, x2, out=moved[:, 0:4:2])
                np.clip(moved[:, 1:4:2], y1, y2, out=moved[:, 1:4:2])
                tile_labels.append(moved)
        window_matrix = matrix.copy()
        window_matrix[:, 2] += matrix[:, :2] @ np.array([win_x1, win_y1], dtype=np.float64)
        warped = cv2.warpAffine(window, window_matrix, dsize=(width, height),
                                borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
        if not tile_labels:
            return warped, np.zeros((0, 5), dtype=np.float32)
        labels = np.concatenate(tile_labels)
        boxes, keep = transform_boxes(labels[:, :4], matrix, self.input_dim)
        labels = labels[keep]
        labels[:, :4] = boxes[keep]
        return warped, labels

    def _mixup(self, img: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Blend 50/50 with a random labelled image, jittered in scale, maybe flipped, randomly cropped."""
        candidates = self.dataset.labelled_indices
        if not candidates:
            return img, labels
        height, width = self.input_dim
        jitter = random.uniform(*self.mixup_scale)
        flip = random.random() > 0.5
        partner = random.choice(candidates)
        partner_h, partner_w = self.dataset.resized_hw(partner)
        # The partner is letterboxed into an input-sized frame, and that frame is scaled by ``jitter``.
        frame_h, frame_w = int(height * jitter), int(width * jitter)
        ratio = min(height / partner_h, width / partner_w) * jitter
        content_w, content_h = min(int(partner_w * ratio), frame_w), min(int(partner_h * ratio), frame_h)
        offset_y = random.randint(0, frame_h - height - 1) if frame_h > height else 0
        offset_x = random.randint(0, frame_w - width - 1) if frame_w > width else 0
        content_x = frame_w - content_w if flip else 0  # where the content sits in the (flipped) frame
        paste_x1, paste_y1 = max(content_x - offset_x, 0), max(-offset_y, 0)
        paste_x2, paste_y2 = min(content_x + content_w - offset_x, width), min(content_h - offset_y, height)
        # Outside the partner's content the layer is padding: the blend there is img / 2 + 114 / 2.
        blended = cv2.convertScaleAbs(img, alpha=0.5, beta=PAD_VALUE * 0.5)
        if paste_x1 < paste_x2 and paste_y1 < paste_y2:
            partner_img = self.dataset.load_resized_img(partner)
            if (content_w, content_h) != (partner_w, partner_h):
                partner_img = cv2.resize(partner_img, (content_w, content_h), interpolation=cv2.INTER_LINEAR)
            if flip:
                partner_img = cv2.flip(partner_img, 1)
            region = (slice(paste_y1, paste_y2), slice(paste_x1, paste_x2))
            partner_part = partner_img[paste_y1 + offset_y:paste_y2 + offset_y,
                                       paste_x1 + offset_x - content_x:paste_x2 + offset_x - content_x]
            blended[region] = cv2.addWeighted(img[region], 0.5, partner_part, 0.5, 0.0)
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
        return blended, np.concatenate([labels, partner_labels[keep]])
