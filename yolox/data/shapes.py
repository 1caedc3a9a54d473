"""A built-in synthetic detection dataset: coloured shapes on textured backgrounds, in COCO or YOLO format.

Every image is drawn from its own random stream derived from (seed, split, index), so the same seed
always gives byte-identical annotations and images, whatever the number of images asked for.
"""

import json
import math
from pathlib import Path

import cv2
import numpy as np

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "ring")
SPLIT_TAGS = {"train": 0, "val": 1}
JPEG_QUALITY = 92
MAX_OBJECTS = 6
MAX_OVERLAP = 0.35  # shapes may overlap partially, never hide each other
PLACEMENT_ATTEMPTS = 30
LAYOUTS = ("coco", "yolo")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return a BGR uint8 background: a colour gradient, low-contrast blobs and lines, pixel noise."""
    corner_colours = rng.uniform(40, 215, size=(2, 3)).astype(np.float32)
    horizontal = rng.random() < 0.5
    ramp = np.linspace(0.0, 1.0, width if horizontal else height, dtype=np.float32)
    ramp = ramp[None, :, None] if horizontal else ramp[:, None, None]
    image = corner_colours[0] + (corner_colours[1] - corner_colours[0]) * ramp
    # one layer of blob shades (later blobs cover earlier ones), added to the gradient at once
    shades = np.zeros((height, width, 3), dtype=np.float32)
    for _ in range(rng.integers(3, 9)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(8, max(9, width // 3))), int(rng.integers(8, max(9, height // 3))))
        shade = tuple(float(v) for v in rng.uniform(-22, 22, size=3))
        cv2.ellipse(shades, centre, axes, float(rng.uniform(0, 180)), 0, 360, shade, -1)
    shades += image
    for _ in range(rng.integers(2, 7)):
        start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        cv2.line(shades, start, end, colour, int(rng.integers(1, 3)))
    noise = rng.standard_normal((height, width, 3), dtype=np.float32)
    noise *= rng.uniform(3, 14)
    shades += noise
    return np.clip(shades, 0, 255).astype(np.uint8)


def _ellipse_polygon(rx: float, ry: float, points: int = 64) -> np.ndarray:
    """Return the outline of an axis-aligned ellipse centred at the origin as an (N, 2) array."""
    angles = np.linspace(0.0, 2.0 * math.pi, points, endpoint=False)
    return np.stack([rx * np.cos(angles), ry * np.sin(angles)], axis=1)


def _shape_outlines(name: str, rng: np.random.Generator, half_w: float, half_h: float) -> list[np.ndarray]:
    """Return the outer outline (and, for a ring, the hole) of a shape centred at the origin."""
    if name == "circle":
        return [_ellipse_polygon(half_w, half_h)]
    if name == "square":
        return [np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])]
    if name == "triangle":
        apex_x = rng.uniform(-0.4, 0.4) * half_w
        return [np.array([[apex_x, -half_h], [half_w, half_h], [-half_w, half_h]])]
    if name == "star":
        inner = rng.uniform(0.38, 0.55)
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return [np.stack([half_w * radii * np.cos(angles), half_h * radii * np.sin(angles)], axis=1)]
    if name == "ring":
        hole = rng.uniform(0.45, 0.7)
        return [_ellipse_polygon(half_w, half_h), _ellipse_polygon(half_w * hole, half_h * hole)]
    raise ValueError(f"unknown shape {name!r}: use one of {', '.join(SHAPE_CLASSES)}")


def _shape_mask(name: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Draw one shape of random size, aspect ratio, rotation and position; return its boolean mask."""
    size = rng.uniform(0.1, 0.42) * min(height, width)
    aspect = rng.uniform(0.8, 1.25) if name in ("circle", "ring", "star") else rng.uniform(0.65, 1.5)
    half_w, half_h = size * math.sqrt(aspect) / 2, size / math.sqrt(aspect) / 2
    outlines = _shape_outlines(name, rng, half_w, half_h)
    angle = rng.uniform(-0.35, 0.35)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
    mask = np.zeros((height, width), dtype=np.uint8)
    for i, outline in enumerate(outlines):
        points = np.round(outline @ rotation.T + centre).astype(np.int32)
        cv2.fillPoly(mask, [points], 0 if i else 1)  # later outlines are holes
    return mask.astype(bool)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return (x, y, w, h) of the smallest pixel box holding every set pixel, None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _overlap_of_smaller(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Share of the smaller of two (x, y, w, h) boxes covered by their intersection."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(iw, 0) * max(ih, 0) / min(a[2] * a[3], b[2] * b[3])


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Pick a saturated-ish colour far enough from the mean colour under the shape to stay visible."""
    mean = background.reshape(-1, 3).mean(axis=0)
    colour = rng.uniform(0, 255, size=3)
    for _ in range(20):
        if np.abs(colour - mean).max() > 70:
            break
        colour = rng.uniform(0, 255, size=3)
    return colour


def draw_shapes_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[dict]]:
    """Draw one image; return it (BGR uint8) and its objects as dicts of class index, bbox, area, mask."""
    image = _background(rng, height, width)
    objects: list[dict] = []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        class_index = int(rng.integers(len(SHAPE_CLASSES)))
        for _attempt in range(PLACEMENT_ATTEMPTS):
            mask = _shape_mask(SHAPE_CLASSES[class_index], rng, height, width)
            box = _tight_box(mask)
            if box is not None and min(box[2], box[3]) >= 4 and all(
                _overlap_of_smaller(box, other["bbox"]) <= MAX_OVERLAP for other in objects
            ):
                break
        else:
            continue
        colour = _contrasting_colour(rng, image[mask])
        shading = rng.normal(0.0, 6.0, size=(int(mask.sum()), 3))
        image[mask] = np.clip(colour + shading, 0, 255).astype(np.uint8)
        for other in objects:  # a later shape covers part of an earlier one
            other["mask"] &= ~mask
        objects.append({"class_index": class_index, "bbox": box, "mask": mask})
    # keep boxes tight around what stays visible
    visible = []
    for obj in objects:
        box = _tight_box(obj["mask"])
        if box is not None:
            visible.append({**obj, "bbox": box, "area": int(obj["mask"].sum())})
    return image, visible


def _write_yolo_labels(path: Path, objects: list[dict], height: int, width: int) -> None:
    """One ``class cx cy w h`` line per object, normalised by the image size (the ultralytics label format)."""
    lines = []
    for obj in objects:
        x, y, w, h = obj["bbox"]
        lines.append(f"{obj['class_index']} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
                     f"{w / width:.6f} {h / height:.6f}")
    path.write_text("".join(line + "\n" for line in lines))


def _write_split(out_dir: Path, split: str, count: int, img_size: tuple[int, int], seed: int,
                 layout: str = "coco") -> None:
    """Generate ``count`` images of one split and their COCO annotation file (or YOLO label files)."""
    height, width = img_size
    image_dir = out_dir / "images" / split if layout == "yolo" else out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir = out_dir / "labels" / split
    if layout == "yolo":
        label_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLIT_TAGS[split], index])
        image, objects = draw_shapes_image(rng, height, width)
        file_name = f"{index:06d}.jpg"
        if not cv2.imwrite(str(image_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {image_dir / file_name}: check the folder is writable")
        if layout == "yolo":
            _write_yolo_labels(label_dir / f"{index:06d}.txt", objects, height, width)
            continue
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for obj in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj["class_index"] + 1,
                    "bbox": list(obj["bbox"]),
                    "area": obj["area"],
                    "iscrowd": 0,
                }
            )
    if layout == "yolo":
        return
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)]
    dataset = {
        "info": {"description": f"synthetic shapes, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    annotation_dir = out_dir / "annotations"
    annotation_dir.mkdir(parents=True, exist_ok=True)
    (annotation_dir / f"instances_{split}.json").write_text(json.dumps(dataset))


def generate_shapes_dataset(
    out_dir: str | Path,
    num_train: int = 800,
    num_val: int = 200,
    img_size: tuple[int, int] | int = (256, 256),
    seed: int = 0,
    layout: str = "coco",
) -> Path:
    """Write the shapes dataset under ``out_dir`` and return that folder.

    ``layout="coco"``: ``annotations/instances_{train,val}.json``, ``train/*.jpg``, ``val/*.jpg``; category ids
    1..5 are circle, square, triangle, star, ring. ``layout="yolo"`` (ultralytics): ``data.yaml``,
    ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` with classes 0..4 in that order; the same
    images. ``img_size`` is (height, width) or one side.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: use one of {', '.join(LAYOUTS)}")
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"img_size={img_size!r}: give (height, width) or one side, each at least 32 pixels")
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train={num_train}, num_val={num_val}: image counts cannot be negative")
    root = Path(out_dir)
    _write_split(root, "train", num_train, size, seed, layout)
    _write_split(root, "val", num_val, size, seed, layout)
    if layout == "yolo":
        names = "".join(f"  {index}: {name}\n" for index, name in enumerate(SHAPE_CLASSES))
        (root / "data.yaml").write_text(f"# synthetic shapes, seed {seed}\npath: .\ntrain: images/train\n"
                                        f"val: images/val\nnames:\n{names}")
    return root
