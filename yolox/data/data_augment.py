"""Image and box transforms: letterbox, HSV jitter, flip, random affine, and the train/val transforms.

Images are BGR ``uint8`` HWC arrays on the way in. The transforms hand the model BGR ``float32`` CHW
arrays with values 0..255, letterboxed to the top-left corner on a canvas of value 114. Boxes travel
as ``x1, y1, x2, y2, class`` rows and leave ``TrainTransform`` as ``class, cx, cy, w, h`` rows.
"""

import math
import random
from collections.abc import Sequence

import cv2
import numpy as np

PAD_VALUE = 114
MIN_BOX_SIDE = 1.0  # boxes this thin (pixels) after augmentation carry no learnable object
LEGACY_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
LEGACY_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)

Range = float | Sequence[float]
# Every random draw takes its generator as ``rng``: a ``random.Random`` owned by one sample (see
# yolox.data.augment_stream), or None for the process-global ``random`` module the official YOLOX draws from.
Rng = random.Random | None


def letterbox_scale(image_hw: tuple[int, int], input_size: tuple[int, int]) -> float:
    """Scale that fits an image of ``image_hw`` inside ``input_size`` (both height, width)."""
    return min(input_size[0] / image_hw[0], input_size[1] / image_hw[1])


def resize_to_fit(img: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize ``img`` (keeping its aspect ratio) to fit ``input_size``; no copy when it already fits exactly."""
    height, width = img.shape[:2]
    ratio = letterbox_scale((height, width), input_size)
    new_w, new_h = int(width * ratio), int(height * ratio)
    if (new_w, new_h) != (width, height):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return img, ratio


def write_chw_float(img: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write a HWC uint8 image into the top-left of the ``3 x H x W`` float32 array ``out``; the rest gets 114.

    This is the one uint8 -> float32 step of the pipeline; writing into ``out`` lets a batched loader fill
    its batch tensor in place. Returns ``out``.
    """
    height, width = img.shape[:2]
    if img.ndim != 3 or img.shape[2] != 3 or height > out.shape[1] or width > out.shape[2]:
        raise ValueError(f"a {img.shape} image does not fit the top-left of a {out.shape} CHW array: "
                         f"resize it to fit first (resize_to_fit)")
    out[:, height:, :] = PAD_VALUE
    out[:, :height, width:] = PAD_VALUE
    # Writing plane by plane from the split channels is the cheapest HWC->CHW float conversion in numpy.
    for channel, plane in enumerate(cv2.split(img)):
        out[channel, :height, :width] = plane
    return out


def to_chw_float(img: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Copy a HWC uint8 image into the top-left of a new ``3 x H x W`` float32 canvas filled with 114."""
    return write_chw_float(img, np.empty((3, input_size[0], input_size[1]), dtype=np.float32))


def preproc(img: np.ndarray, input_size: tuple[int, int],
            swap: tuple[int, int, int] = (2, 0, 1)) -> tuple[np.ndarray, float]:
    """Letterbox ``img`` to ``input_size`` (top-left, pad 114) as float32; returns the image and its scale."""
    resized, ratio = resize_to_fit(img, input_size)
    if tuple(swap) == (2, 0, 1):
        return to_chw_float(resized, input_size), ratio
    canvas = np.full((input_size[0], input_size[1], 3), PAD_VALUE, dtype=np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return np.ascontiguousarray(canvas.transpose(swap), dtype=np.float32), ratio


def augment_hsv(img: np.ndarray, hgain: float = 5, sgain: float = 30, vgain: float = 30, rng: Rng = None) -> None:
    """Shift hue, saturation and value of a BGR uint8 image in place; each channel is jittered with p=0.5."""
    draw = rng or random
    shifts = [int(draw.uniform(-gain, gain)) if draw.random() < 0.5 else 0 for gain in (hgain, sgain, vgain)]
    if not any(shifts):
        return
    levels = np.arange(256, dtype=np.int32)
    table = np.stack([
        (levels + shifts[0]) % 180,  # OpenCV's 8-bit hue runs 0..179 and wraps around
        np.clip(levels + shifts[1], 0, 255),
        np.clip(levels + shifts[2], 0, 255),
    ], axis=-1).astype(np.uint8).reshape(1, 256, 3)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    cv2.LUT(hsv, table, dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Mirror ``x1, y1, x2, y2`` boxes horizontally inside an image of ``width`` pixels."""
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def random_flip(img: np.ndarray, boxes: np.ndarray, prob: float, rng: Rng = None) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image and its boxes left-right with probability ``prob``."""
    if (rng or random).random() < prob:
        return cv2.flip(img, 1), flip_boxes(boxes, img.shape[1])
    return img, boxes


def draw_range(value: Range, center: float = 0.0, rng: Rng = None) -> float:
    """Uniform draw from ``(low, high)`` when a pair is given, else from ``center +- value``."""
    draw = rng or random
    if isinstance(value, (int, float)):
        return draw.uniform(center - value, center + value)
    if len(value) != 2:
        raise ValueError(f"expected a number or a (low, high) pair, got {value!r}")
    return draw.uniform(value[0], value[1])


def random_affine_matrix(source_hw: tuple[int, int], target_hw: tuple[int, int], degrees: Range = 10.0,
                         translate: float = 0.1, scales: Range = 0.1, shear: Range = 10.0,
                         rng: Rng = None) -> tuple[np.ndarray, float]:
    """Draw a 2x3 affine map (rotation, scale, shear, translation) from a source image onto a target.

    The rotation, scale and shear act about the source centre, which lands at the target centre moved
    by up to ``translate`` times the target size; so a 2x mosaic canvas keeps its meeting point in view.
    """
    draw = rng or random
    angle = draw_range(degrees, rng=rng)
    scale = draw_range(scales, center=1.0, rng=rng)
    if scale <= 0:
        raise ValueError(f"the affine scale must be positive, got {scale} from scales={scales!r}")
    shear_x = math.tan(math.radians(draw_range(shear, rng=rng)))
    shear_y = math.tan(math.radians(draw_range(shear, rng=rng)))
    rotation = np.eye(3)
    rotation[:2] = cv2.getRotationMatrix2D(center=(0.0, 0.0), angle=angle, scale=scale)
    shearing = np.array([[1.0, shear_x, 0.0], [shear_y, 1.0, 0.0], [0.0, 0.0, 1.0]])
    to_origin = np.array([[1.0, 0.0, -source_hw[1] / 2], [0.0, 1.0, -source_hw[0] / 2], [0.0, 0.0, 1.0]])
    to_target = np.array([
        [1.0, 0.0, draw.uniform(0.5 - translate, 0.5 + translate) * target_hw[1]],
        [0.0, 1.0, draw.uniform(0.5 - translate, 0.5 + translate) * target_hw[0]],
        [0.0, 0.0, 1.0],
    ])
    matrix = to_target @ shearing @ rotation @ to_origin
    return matrix[:2], scale


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, target_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Map ``x1, y1, x2, y2`` boxes through a 2x3 affine map: the box around the four moved corners, clipped.

    Returns the new boxes and the mask of those that keep a positive area inside the target.
    """
    xs = boxes[:, [0, 2, 2, 0]]
    ys = boxes[:, [1, 1, 3, 3]]
    new_xs = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    new_ys = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    moved = np.stack([new_xs.min(1), new_ys.min(1), new_xs.max(1), new_ys.max(1)], axis=1)
    np.clip(moved[:, 0::2], 0, target_hw[1], out=moved[:, 0::2])
    np.clip(moved[:, 1::2], 0, target_hw[0], out=moved[:, 1::2])
    keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
    return moved.astype(boxes.dtype, copy=False), keep


def random_affine(img: np.ndarray, targets: np.ndarray, target_size: tuple[int, int] = (640, 640),
                  degrees: Range = 10.0, translate: float = 0.1, scales: Range = 0.1,
                  shear: Range = 10.0, rng: Rng = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``img`` once onto a ``target_size`` (h, w) canvas padded with 114; boxes follow, empty ones dropped."""
    matrix, _ = random_affine_matrix(img.shape[:2], target_size, degrees, translate, scales, shear, rng=rng)
    warped = cv2.warpAffine(img, matrix, dsize=(target_size[1], target_size[0]),
                            borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    if len(targets) == 0:
        return warped, targets
    boxes, keep = transform_boxes(targets[:, :4], matrix, target_size)
    moved = targets[keep].copy()
    moved[:, :4] = boxes[keep]
    return warped, moved


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """Convert ``x1, y1, x2, y2`` rows to ``cx, cy, w, h`` rows (new array)."""
    converted = np.empty_like(boxes)
    converted[:, 2] = boxes[:, 2] - boxes[:, 0]
    converted[:, 3] = boxes[:, 3] - boxes[:, 1]
    converted[:, 0] = boxes[:, 0] + converted[:, 2] * 0.5
    converted[:, 1] = boxes[:, 1] + converted[:, 3] * 0.5
    return converted


class TrainTransform:
    """Training transform: HSV jitter, random flip, letterbox; targets padded to ``max_labels`` rows.

    Returns a float32 CHW image and ``[max_labels, 5]`` float32 rows ``class, cx, cy, w, h`` (pixels of
    the letterboxed input); boxes thinner than one pixel are dropped, zero rows pad the rest. Calling it
    is ``augment`` followed by ``to_chw_float``; batched loaders call ``augment`` and write the float
    image straight into their batch (subclasses change ``augment``, not ``__call__``).
    """

    def __init__(self, max_labels: int = 50, flip_prob: float = 0.5, hsv_prob: float = 1.0) -> None:
        self.max_labels = max_labels
        self.flip_prob = flip_prob
        self.hsv_prob = hsv_prob

    def augment(self, image: np.ndarray, targets: np.ndarray, input_dim: tuple[int, int],
                rng: Rng = None) -> tuple[np.ndarray, np.ndarray]:
        """The augmented ``uint8`` HWC image (fitting ``input_dim``, not yet padded) and the padded targets.

        ``image`` may be modified in place; ``targets`` are ``x1, y1, x2, y2, class`` rows; the HSV and flip
        draws come from ``rng`` (None: the global ``random`` module).
        """
        if (rng or random).random() < self.hsv_prob:
            augment_hsv(image, rng=rng)
        image, boxes = random_flip(image, targets[:, :4], self.flip_prob, rng=rng)
        resized, ratio = resize_to_fit(image, input_dim)
        boxes = xyxy_to_cxcywh(boxes) * ratio
        keep = np.minimum(boxes[:, 2], boxes[:, 3]) > MIN_BOX_SIDE
        count = min(int(keep.sum()), self.max_labels)
        padded = np.zeros((self.max_labels, 5), dtype=np.float32)
        padded[:count, 0] = targets[keep, 4][:count]
        padded[:count, 1:] = boxes[keep][:count]
        return resized, padded

    def __call__(self, image: np.ndarray, targets: np.ndarray, input_dim: tuple[int, int],
                 rng: Rng = None) -> tuple[np.ndarray, np.ndarray]:
        """Augment one ``uint8`` BGR image (modified in place) and its ``x1, y1, x2, y2, class`` rows."""
        resized, padded = self.augment(image, targets, input_dim, rng=rng)
        return to_chw_float(resized, input_dim), padded


class ValTransform:
    """Evaluation transform: letterbox to the input size (top-left, pad 114), BGR float32 CHW 0..255.

    ``legacy=True`` reproduces the models trained before YOLOX 0.2: RGB, scaled to 0..1 and normalised
    with the ImageNet mean and std.
    """

    def __init__(self, swap: tuple[int, int, int] = (2, 0, 1), legacy: bool = False) -> None:
        self.swap = swap
        self.legacy = legacy

    def __call__(self, img: np.ndarray, res: np.ndarray,
                 input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox ``img``; ``res`` (the targets) is ignored and a ``[1, 5]`` zero array returned."""
        img, _ = preproc(img, input_size, self.swap)
        if self.legacy:
            img = img[::-1].copy()
            img /= 255.0
            img -= LEGACY_MEAN
            img /= LEGACY_STD
        return img, np.zeros((1, 5), dtype=np.float32)
