"""PASCAL VOC-format dataset: ``VOCdevkit/VOC<year>/{Annotations,JPEGImages,ImageSets/Main}``."""

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from yolox.data.dataloading import resolve_data_dir
from yolox.data.datasets.datasets_wrapper import BoxReport, DetectionDataset, ImageRecord, Transform
from yolox.data.datasets.voc_classes import VOC_CLASSES
from yolox.utils.errors import UserError

BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


class VOCDetection(DetectionDataset):
    """VOC-format dataset over one or more image sets such as ``[("2007", "trainval"), ("2012", "trainval")]``.

    Boxes move from VOC's 1-based pixels to 0-based ones. Objects marked ``difficult`` are kept and
    flagged (``ground_truth(index)["difficult"]``); ``keep_difficult=False`` drops them instead.
    The image id returned with each item is its index; ``ids[index]`` is ``(VOC<year> folder, image name)``.
    """

    def __init__(self, data_dir: str | None = None, image_sets: Sequence[tuple[str, str]] = (("2007", "trainval"),),
                 img_size: tuple[int, int] = (416, 416), preproc: Transform | None = None,
                 class_names: Sequence[str] | None = None, dataset_name: str = "VOC0712",
                 cache: bool = False, cache_type: str = "ram", num_classes: int | None = None,
                 keep_difficult: bool = True, cache_dir: str | None = None) -> None:
        super().__init__(img_size, preproc)
        self.root, origin = resolve_data_dir(data_dir, "VOCdevkit")
        self.image_sets = [(str(year), str(split)) for year, split in image_sets]
        self.name = dataset_name
        self.keep_difficult = keep_difficult
        names = tuple(class_names) if class_names is not None else VOC_CLASSES
        if num_classes is not None and len(names) != num_classes:
            raise UserError(f"the VOC class list has {len(names)} names but the exp sets num_classes = {num_classes}: "
                            f"set the exp key num_classes to {len(names)} or class_names to {num_classes} names")
        self.class_to_index = {cls_name: index for index, cls_name in enumerate(names)}
        self.ids: list[tuple[str, str]] = []
        for year, split in self.image_sets:
            set_file = self.root / f"VOC{year}" / "ImageSets" / "Main" / f"{split}.txt"
            if not set_file.is_file():
                raise UserError(f"VOC image set {set_file} not found (data_dir {origin}): set the exp key data_dir "
                                f"to the VOCdevkit folder or fix the image sets {self.image_sets}")
            lines = set_file.read_text(encoding="utf-8").split()
            self.ids.extend((f"VOC{year}", line) for line in lines)
        source = ", ".join(f"VOC{year}/{split}" for year, split in self.image_sets)
        report = BoxReport(f"VOC annotations of {source}")
        records = [self._parse(index, folder, image_name, report) for index, (folder, image_name) in enumerate(self.ids)]
        report.warn()
        # One cache folder per list of image sets, so a train and a test dataset never evict each other.
        cache_name = dataset_name + "_" + "+".join(f"{year}{split}" for year, split in self.image_sets)
        self._finish_setup(records, names, f"the VOC image sets {source} in {self.root}", cache, cache_type,
                           Path(cache_dir) if cache_dir else None, self.root, cache_name)

    def _parse(self, index: int, folder: str, image_name: str, report: BoxReport) -> ImageRecord:
        """Read ``Annotations/<image_name>.xml`` into a record (0-based, clipped boxes)."""
        xml_path = self.root / folder / "Annotations" / f"{image_name}.xml"
        image_path = self.root / folder / "JPEGImages" / f"{image_name}.jpg"
        try:
            tree = ET.parse(xml_path).getroot()
        except FileNotFoundError:
            raise UserError(f"VOC annotation {xml_path} not found: restore it or remove {image_name} from the "
                            f"image set") from None
        except ET.ParseError as err:
            raise UserError(f"VOC annotation {xml_path} is not valid XML ({err}): repair or re-export it") from None
        width, height = self._image_size(tree, image_path)
        raw, classes, difficult = [], [], []
        for obj in tree.iter("object"):
            cls_name = (obj.findtext("name") or "").strip().lower()
            if cls_name not in self.class_to_index:
                raise UserError(f"VOC annotation {xml_path} has an object of class {cls_name!r}, which is not among "
                                f"the {len(self.class_to_index)} class names: add it to the exp key class_names")
            is_difficult = (obj.findtext("difficult") or "0").strip() == "1"
            if is_difficult and not self.keep_difficult:
                continue
            bndbox = obj.find("bndbox")
            try:
                raw.append([float(bndbox.findtext(tag)) - 1.0 for tag in BOX_TAGS])
            except (AttributeError, TypeError, ValueError):
                raise UserError(f"VOC annotation {xml_path}: an object of class {cls_name!r} lacks a numeric "
                                f"bndbox (xmin, ymin, xmax, ymax)") from None
            classes.append(self.class_to_index[cls_name])
            difficult.append(is_difficult)
        boxes, keep = report.clean(np.array(raw, dtype=np.float64).reshape(-1, 4), width, height, str(xml_path))
        return ImageRecord(image_id=index, path=image_path, key=f"{folder}/{image_name}", height=height, width=width,
                           boxes=boxes[keep], classes=np.array(classes, dtype=np.int64)[keep],
                           difficult=np.array(difficult, dtype=bool)[keep])

    @staticmethod
    def _image_size(tree: ET.Element, image_path: Path) -> tuple[int, int]:
        """(width, height) from the annotation's ``size``; decoded from the image when the XML lacks it."""
        try:
            width, height = int(float(tree.findtext("size/width"))), int(float(tree.findtext("size/height")))
        except (TypeError, ValueError):
            width = height = 0
        if width > 0 and height > 0:
            return width, height
        img = cv2.imread(str(image_path))
        if img is None:
            raise UserError(f"image {image_path} is missing or unreadable and its annotation gives no size: "
                            f"restore it or remove it from the image set")
        return img.shape[1], img.shape[0]
