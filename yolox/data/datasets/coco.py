"""COCO-format detection dataset: ``<data_dir>/annotations/<json>`` with images in ``<data_dir>/<name>/``."""

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pycocotools.coco import COCO

from yolox.data.dataloading import resolve_data_dir
from yolox.data.datasets.datasets_wrapper import BoxReport, DetectionDataset, ImageRecord, Transform
from yolox.utils.errors import UserError


def load_coco_json(path: Path, data_dir_origin: str) -> dict[str, Any]:
    """Read a COCO annotation file, raising a UserError that names it when it is missing or malformed."""
    if not path.is_file():
        raise UserError(f"annotation file {path} not found (data_dir {data_dir_origin}): set the exp key data_dir or "
                        f"$YOLOX_DATADIR, or the exp keys train_ann/val_ann to the right file name")
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise UserError(f"annotation file {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
                        f"{err.msg}): re-export or repair it") from None
    except UnicodeDecodeError as err:
        raise UserError(f"annotation file {path} is not valid JSON text ({err.reason}): re-export it as UTF-8") from None
    if not isinstance(data, dict):
        raise UserError(f"annotation file {path} holds a {type(data).__name__}, not a COCO object with "
                        f"'images', 'annotations' and 'categories'")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"annotation file {path} has no '{key}' list: it is not in COCO format")
    data.setdefault("annotations", [])
    check_image_ids(data, path)
    # Many exported datasets omit these; pycocotools copies them when loading results.
    data.setdefault("info", {})
    data.setdefault("licenses", [])
    return data


def check_image_ids(data: dict[str, Any], path: Path) -> None:
    """Duplicate image ids are an error (pycocotools keeps one and gives it the other's boxes); boxes of
    image ids absent from ``images`` are ignored with one warning."""
    file_by_id: dict[Any, str] = {}
    for image in data["images"]:
        if not isinstance(image, dict) or "id" not in image:
            raise UserError(f"annotation file {path}: image entry {image!r} has no 'id'")
        image_id = image["id"]
        if image_id in file_by_id:
            raise UserError(f"annotation file {path}: image id {image_id!r} is used twice, by "
                            f"{file_by_id[image_id]!r} and {image.get('file_name')!r}: give every image its own id")
        file_by_id[image_id] = image.get("file_name")
    orphans = [ann for ann in data["annotations"] if isinstance(ann, dict) and ann.get("image_id") not in file_by_id]
    if orphans:
        logger.warning(f"{path}: {len(orphans)} annotations refer to image ids that are not in 'images' and are "
                       f"ignored; first: annotation id {orphans[0].get('id')!r} with image_id "
                       f"{orphans[0].get('image_id')!r}")


def build_coco(data: dict[str, Any]) -> COCO:
    """A pycocotools COCO object over already-parsed annotations, without its console chatter."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class COCODataset(DetectionDataset):
    """COCO-format dataset: contiguous class indices from the sorted category ids, crowd boxes ignored.

    Boxes are clipped to their image and empty ones dropped (one warning sums them up); images without
    boxes stay as background. ``num_classes``, when given, must equal the number of categories.
    """

    def __init__(self, data_dir: str | None = None, json_file: str = "instances_train2017.json",
                 name: str = "train2017", img_size: tuple[int, int] = (416, 416),
                 preproc: Transform | None = None, cache: bool = False, cache_type: str = "ram",
                 num_classes: int | None = None, cache_dir: str | None = None) -> None:
        super().__init__(img_size, preproc)
        self.data_dir, origin = resolve_data_dir(data_dir, "COCO")
        self.json_file = json_file
        self.name = name
        ann_path = self.data_dir / "annotations" / json_file
        self.coco = build_coco(load_coco_json(ann_path, origin))
        self._index(str(ann_path), num_classes, cache, cache_type, cache_dir, cache_name=name)

    def _index(self, ann_path: str, num_classes: int | None, cache: bool, cache_type: str,
               cache_dir: str | None, cache_name: str) -> None:
        """Build the class ids, image ids and records from ``self.coco`` and finish the set-up (checks, cache)."""
        self.class_ids = sorted(self.coco.getCatIds())
        if num_classes is not None and len(self.class_ids) != num_classes:
            raise UserError(f"annotation file {ann_path} has {len(self.class_ids)} categories but the exp sets "
                            f"num_classes = {num_classes}: set the exp key num_classes to {len(self.class_ids)} "
                            f"(or use the annotation file meant for this model)")
        self.cats = self.coco.loadCats(self.class_ids)
        self.ids = self.coco.getImgIds()
        records = self._parse_records(ann_path)
        self._finish_setup(records, [cat["name"] for cat in self.cats], ann_path, cache, cache_type,
                           Path(cache_dir) if cache_dir else None, self.data_dir, cache_name)

    def _parse_records(self, ann_path: str) -> list[ImageRecord]:
        """One record per image: clipped non-crowd boxes with contiguous class indices."""
        class_index = {cat_id: index for index, cat_id in enumerate(self.class_ids)}
        report = BoxReport(ann_path)
        image_root = self.data_dir / self.name
        records = []
        for image_id in self.ids:
            info = self.coco.imgs[image_id]
            try:
                width, height, file_name = int(info["width"]), int(info["height"]), str(info["file_name"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"annotation file {ann_path}: image entry {info!r} lacks a valid 'file_name', "
                                f"'width' or 'height'") from None
            anns = [ann for ann in self.coco.imgToAnns.get(image_id, []) if not ann.get("iscrowd", 0)]
            for ann in anns:
                if ann.get("category_id") not in class_index:
                    raise UserError(f"annotation file {ann_path}: annotation id {ann.get('id')} uses category_id "
                                    f"{ann.get('category_id')!r}, which is not in 'categories'")
            try:
                raw = np.array([ann["bbox"] for ann in anns], dtype=np.float64).reshape(len(anns), 4)
            except (KeyError, TypeError, ValueError):
                raise UserError(f"annotation file {ann_path}: an annotation of image id {image_id} has no 'bbox' "
                                f"of four numbers [x, y, width, height]") from None
            raw[:, 2:] += raw[:, :2]  # x, y, w, h -> x1, y1, x2, y2
            boxes, keep = report.clean(raw, width, height, f"image id {image_id} ({file_name})")
            classes = np.array([class_index[ann["category_id"]] for ann in anns], dtype=np.int64)
            records.append(ImageRecord(image_id=image_id, path=image_root / file_name, key=file_name,
                                       height=height, width=width, boxes=boxes[keep], classes=classes[keep]))
        report.warn()
        if not any(len(record.boxes) for record in records):
            logger.warning(f"{ann_path}: none of its {len(records)} images has a box ({len(self.coco.anns)} "
                           "annotations, crowd and dropped ones included): only background can be learned from it")
        return records

