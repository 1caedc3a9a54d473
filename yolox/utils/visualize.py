"""Drawing detections on BGR images: class-coloured boxes and score labels readable on any background.

Only numpy and OpenCV are used, so deployments without PyTorch can draw with the same code.
"""

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

# The golden-ratio hue step spreads consecutive class indices far apart on the colour wheel.
_HUE_STEP = 0.6180339887
# Relative luminance above which black text reads better than white on a filled label.
_LIGHT_BACKGROUND_LUMA = 140.0
_HALO_COLOR = (0, 0, 0)


def class_color(class_id: int) -> tuple[int, int, int]:
    """Return a stable, saturated BGR colour for ``class_id`` (distinct for neighbouring ids)."""
    hue = (int(class_id) * _HUE_STEP) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(round(blue * 255)), int(round(green * 255)), int(round(red * 255))


def contrasting_text_color(background_bgr: Sequence[int]) -> tuple[int, int, int]:
    """Return black or white, whichever reads better on ``background_bgr``."""
    blue, green, red = (float(c) for c in background_bgr[:3])
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luma > _LIGHT_BACKGROUND_LUMA else (255, 255, 255)


def class_name(class_id: int, class_names: Sequence[str] | None = None) -> str:
    """Return the name of ``class_id``, or ``"class <id>"`` when no name is known."""
    if class_names is not None and 0 <= class_id < len(class_names):
        return str(class_names[class_id])
    return f"class {class_id}"


def label_text(class_id: int, score: float, class_names: Sequence[str] | None = None) -> str:
    """Return the label drawn for one detection, e.g. ``"dog 0.87"``."""
    return f"{class_name(class_id, class_names)} {score:.2f}"


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.0,
) -> np.ndarray:
    """Return a copy of the BGR ``image`` with every box (x1, y1, x2, y2) scoring >= ``score_threshold`` drawn."""
    canvas = np.ascontiguousarray(image).copy()
    height, width = canvas.shape[:2]
    # Line and font sizes follow the image size so labels stay legible on large and small images.
    thickness = max(1, int(round(min(height, width) / 320)))
    font_scale = max(0.35, min(height, width) / 900)
    font = cv2.FONT_HERSHEY_SIMPLEX
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    for box, score, class_id in zip(boxes, scores, class_ids):
        if score < score_threshold:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, x2 = max(0, min(x1, width - 1)), max(0, min(x2, width - 1))
        y1, y2 = max(0, min(y1, height - 1)), max(0, min(y2, height - 1))
        color = class_color(int(class_id))
        # A dark halo under the coloured outline keeps light colours visible on bright images.
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _HALO_COLOR, thickness + 2)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        text = label_text(int(class_id), float(score), class_names)
        (text_w, text_h), baseline = cv2.getTextSize(text, font, font_scale, 1)
        label_h = text_h + baseline + 2
        # Put the label above the box when it fits, else just inside its top edge.
        top = y1 - label_h if y1 - label_h >= 0 else y1
        left = min(x1, max(0, width - text_w - 2))
        cv2.rectangle(canvas, (left, top), (left + text_w + 2, top + label_h), color, cv2.FILLED)
        cv2.putText(
            canvas,
            text,
            (left + 1, top + text_h + 1),
            font,
            font_scale,
            contrasting_text_color(color),
            1,
            cv2.LINE_AA,
        )
    return canvas


def tile_images(images: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Lay equally sized BGR images out in a grid, row by row, padding the last row with grey."""
    if not images:
        raise ValueError("no images to tile")
    height, width = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.full((rows * height, columns * width, 3), 114, dtype=np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = cv2.resize(image, (width, height))
    return grid
