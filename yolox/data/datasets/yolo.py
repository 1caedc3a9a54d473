"""YOLO-format detection data as ultralytics lays it out: a ``data.yaml``, ``images/`` and ``labels/``.

``data.yaml`` holds ``path`` (the dataset root, relative to the yaml's folder; default that folder),
``train``, ``val`` and optionally ``test`` (each a folder of images, a ``.txt`` list of image paths, or a list
of those, relative to ``path``), ``names`` (a list, or a mapping ``index: name``) and optionally ``nc``.
The labels of ``.../images/<rest>/x.jpg`` are in ``.../labels/<rest>/x.txt`` (the last ``images`` folder of
the path becomes ``labels``): one object per line, ``class cx cy w h`` normalised to 0..1 by the image's
width and height (a segmentation line ``class x1 y1 x2 y2 ...`` counts as the box around its points). An image
without a label file is background.

The split is turned into a COCO annotation dict (``yolo_split_to_coco``), so training, the start-up checks
and the COCO metrics are those of COCO-format data; ``tools/convert_dataset.py`` writes that dict as JSON.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolox.data.datasets.coco import COCODataset, build_coco
from yolox.data.datasets.datasets_wrapper import DetectionDataset, Transform
from yolox.utils.errors import UserError
from yolox.utils.onnx_inference import IMAGE_EXTENSIONS

YOLO_SPLITS = ("train", "val", "test")
LABEL_HINT = "labels are 'class cx cy w h', the box normalised to 0..1 by the image's width and height"
# How far a normalised box edge may pass the image border and still count as on it (rounding of written labels).
BORDER_TOLERANCE = 1e-5
# EXIF orientations that turn the stored picture by 90 degrees: OpenCV reads those images with width and height swapped.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


@dataclass
class YoloDataConfig:
    """What a data.yaml says: where it is, the dataset root, the raw split entries and the class names."""

    yaml_path: Path
    root: Path
    splits: dict[str, list[str]]
    names: tuple[str, ...]


def _load_yaml(path: Path) -> Any:
    """Parse a YAML file with PyYAML, naming the extra to install when it is missing."""
    try:
        import yaml
    except ImportError:
        raise UserError(f"reading {path} needs PyYAML: pip install -e \".[yolo]\" (or pip install pyyaml)") from None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None


def _class_names(value: Any, path: Path) -> tuple[str, ...]:
    """The ``names`` entry as a tuple: a list, or a mapping of the indices 0..n-1 to names."""
    if isinstance(value, dict):
        try:
            indices = sorted(int(key) for key in value)
        except (TypeError, ValueError):
            raise UserError(f"{path}: the keys of 'names' must be class indices 0, 1, ...") from None
        if indices != list(range(len(indices))):
            raise UserError(f"{path}: the keys of 'names' must be 0..{len(indices) - 1} without gaps, got {indices}")
        by_index = {int(key): name for key, name in value.items()}
        return tuple(str(by_index[index]) for index in indices)
    if isinstance(value, (list, tuple)) and value:
        return tuple(str(name) for name in value)
    raise UserError(f"{path}: 'names' must list the class names (a list, or 0: name, 1: name, ...)")


def read_data_yaml(data_yaml: str | Path) -> YoloDataConfig:
    """Read and check an ultralytics-style ``data.yaml``; a mistake is a UserError naming the file and key."""
    path = Path(data_yaml)
    if not path.is_file():
        raise UserError(f"data.yaml {path} not found: set the exp key data_yaml (or data_dir to the folder holding it)")
    content = _load_yaml(path)
    if not isinstance(content, dict):
        raise UserError(f"{path} must be a mapping with path, train, val and names")
    root = Path(content.get("path") or ".")
    root = root if root.is_absolute() else path.parent / root
    if not root.is_dir():
        raise UserError(f"{path}: path {content.get('path')!r} is not a folder ({root})")
    splits = {}
    for split in YOLO_SPLITS:
        entry = content.get(split)
        if entry:
            splits[split] = [str(item) for item in (entry if isinstance(entry, (list, tuple)) else [entry])]
    if "names" not in content:
        raise UserError(f"{path} has no 'names': list the class names, e.g. names: [cat, dog]")
    names = _class_names(content["names"], path)
    if content.get("nc") is not None and int(content["nc"]) != len(names):
        raise UserError(f"{path}: nc is {content['nc']} but 'names' lists {len(names)} classes: make them agree")
    return YoloDataConfig(path, root, splits, names)


def split_images(config: YoloDataConfig, split: str) -> list[Path]:
    """The image files of ``split``: every image under its folders and every path in its ``.txt`` lists."""
    if split not in config.splits:
        raise UserError(f"{config.yaml_path} has no '{split}' entry: add {split}: images/{split} (a folder or a .txt list)")
    images: list[Path] = []
    for entry in config.splits[split]:
        location = Path(entry) if Path(entry).is_absolute() else config.root / entry
        if location.is_dir():
            images.extend(sorted(p for p in location.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif location.is_file() and location.suffix == ".txt":
            for line in location.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    listed = Path(line[2:] if line.startswith("./") else line)
                    images.append(listed if listed.is_absolute() else location.parent / listed)
        else:
            raise UserError(f"{config.yaml_path}: {split} entry {entry!r} is neither a folder nor a .txt list "
                            f"({location} does not exist)")
    if not images:
        raise UserError(f"{config.yaml_path}: the {split} split holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def label_path_for(image_path: Path) -> Path:
    """Where the labels of an image are: its last ``images`` folder swapped for ``labels``, suffix ``.txt``."""
    parts = list(image_path.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_label_file(path: Path, num_classes: int) -> np.ndarray:
    """``[N, 5]`` float64 rows ``class, cx, cy, w, h`` (normalised) of one label file; a bad line names file and line."""
    rows = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_number}: {line.strip()!r}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise UserError(f"{where} has {len(fields)} fields, expected 5 (or a polygon: class x1 y1 x2 y2 x3 y3 ...); "
                            f"{LABEL_HINT}")
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise UserError(f"{where} holds something that is not a number; {LABEL_HINT}") from None
        class_index = values[0]
        if class_index != int(class_index) or not 0 <= class_index < num_classes:
            raise UserError(f"{where}: class {fields[0]} is not one of 0..{num_classes - 1} (the {num_classes} names "
                            "of data.yaml)")
        coordinates = np.asarray(values[1:])
        if not np.isfinite(coordinates).all() or coordinates.min() < 0 or coordinates.max() > 1:
            raise UserError(f"{where} has coordinates outside 0..1 (pixels instead of fractions?); {LABEL_HINT}")
        if len(fields) == 5:
            rows.append(values)
        else:
            xs, ys = coordinates[0::2], coordinates[1::2]
            rows.append([class_index, (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2,
                         xs.max() - xs.min(), ys.max() - ys.min()])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as OpenCV decodes it (EXIF rotation applied), read from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112)
    except FileNotFoundError:
        raise UserError(f"image {path} is missing: restore it or remove it from the split") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"image {path} cannot be read ({err}): replace it or remove it from the split") from None
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _snap(value: float) -> float:
    """A normalised edge, put on the image border when it is off by no more than label rounding."""
    if -BORDER_TOLERANCE <= value < 0:
        return 0.0
    if 1 < value <= 1 + BORDER_TOLERANCE:
        return 1.0
    return value


def yolo_split_to_coco(config: YoloDataConfig, split: str) -> dict[str, Any]:
    """A COCO annotation dict of one split: image file names relative to the root, category ids 1..n in name order."""
    images, annotations = [], []
    for image_id, image_path in enumerate(split_images(config, split), start=1):
        width, height = image_size(image_path)
        try:
            file_name = image_path.relative_to(config.root).as_posix()
        except ValueError:
            file_name = str(image_path)  # outside the root (an absolute path in a .txt list): kept as it is
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        label_file = label_path_for(image_path)
        if not label_file.is_file():
            continue
        for class_index, cx, cy, w, h in read_label_file(label_file, len(config.names)):
            # Edges within rounding of the border (labels written with a few decimals) sit on it.
            x1, y1, x2, y2 = (_snap(value) for value in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            box = [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(class_index) + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(config.names)]
    return {"info": {"description": f"{config.yaml_path} ({split})"}, "licenses": [], "images": images,
            "annotations": annotations, "categories": categories}


class YOLODataset(COCODataset):
    """A split of a YOLO-format dataset, read through its COCO form: the same checks, boxes and metrics.

    ``json_file`` names the source (``<data.yaml> (<split>)``) in messages; ``coco`` is the COCO index that
    the evaluator scores against.
    """

    def __init__(self, data_yaml: str | Path, split: str = "train", img_size: tuple[int, int] = (416, 416),
                 preproc: Transform | None = None, cache: bool = False, cache_type: str = "ram",
                 num_classes: int | None = None, cache_dir: str | None = None) -> None:
        DetectionDataset.__init__(self, img_size, preproc)
        config = read_data_yaml(data_yaml)
        if num_classes is not None and len(config.names) != num_classes:
            raise UserError(f"{config.yaml_path} names {len(config.names)} classes but the exp sets num_classes = "
                            f"{num_classes}: set the exp key num_classes to {len(config.names)}")
        self.data_dir, self.name = config.root, "."
        self.json_file = f"{config.yaml_path} ({split})"
        self.coco = build_coco(yolo_split_to_coco(config, split))
        self._index(self.json_file, num_classes, cache, cache_type, cache_dir, cache_name=split)
