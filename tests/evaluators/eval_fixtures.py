"""Model-free evaluation fixtures: a letterboxed dataset over a generated COCO set and an oracle model.

The oracle reads the dataset index that each image carries in its first pixel and returns that image's
ground truth (optionally jittered) as raw predictions in input pixels, so the whole evaluator (inference,
NMS, letterbox scaling, conversion, scoring) runs without a trained network.
"""

import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pycocotools.coco import COCO

from yolox.data.shapes import generate_shapes_dataset


def make_coco_set(root: Path, num_val: int = 6, img_size: tuple[int, int] = (96, 128), seed: int = 3) -> Path:
    """Generate a small shapes set (validation split only) and return the annotation file."""
    generate_shapes_dataset(root, num_train=0, num_val=num_val, img_size=img_size, seed=seed)
    return root / "annotations" / "instances_val.json"


class LetterboxedGroundTruth(torch.utils.data.Dataset):
    """Yields (image, targets, (h, w), image id) like the COCO eval dataset, with the index in pixel 0."""

    def __init__(self, json_file: Path, input_size: tuple[int, int]) -> None:
        """Index the annotation file; images are blank apart from the index marker."""
        self.json_file = str(json_file)
        self.coco = COCO(self.json_file)
        self.ids = sorted(self.coco.getImgIds())
        self.class_ids = sorted(self.coco.getCatIds())
        self.input_size = input_size

    def __len__(self) -> int:
        """Number of images."""
        return len(self.ids)

    def __getitem__(self, index: int):
        """A blank letterboxed image carrying ``index``, zero targets, the original size and the id."""
        info = self.coco.imgs[self.ids[index]]
        image = torch.zeros(3, *self.input_size)
        image[0, 0, 0] = index
        return image, torch.zeros(1, 5), (info["height"], info["width"]), self.ids[index]


def coco_truth(dataset: LetterboxedGroundTruth) -> tuple[list[list[tuple]], list[tuple[int, int]]]:
    """Per dataset index: the objects as (x1, y1, x2, y2, class index), and the (h, w) of the image."""
    truth, sizes = [], []
    for image_id in dataset.ids:
        info = dataset.coco.imgs[image_id]
        anns = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=[image_id]))
        truth.append([(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3],
                       dataset.class_ids.index(a["category_id"])) for a in anns])  # fmt: skip
        sizes.append((info["height"], info["width"]))
    return truth, sizes


class OracleModel(torch.nn.Module):
    """Returns each image's objects as [B, A, 5 + C] predictions; ``jitter`` moves boxes and lowers scores.

    The image's index is read from its first pixel divided by ``index_scale``.
    """

    def __init__(self, truth: list[list[tuple]], sizes: list[tuple[int, int]], input_size: tuple[int, int],
                 num_classes: int, jitter: float = 0.0, index_scale: float = 1.0, slots: int = 16) -> None:
        """Precompute every image's raw predictions (cx, cy, w, h in input pixels, obj, class scores)."""
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.index_scale = index_scale
        table = torch.zeros(len(truth), slots, 5 + num_classes)
        rng = np.random.default_rng(11)
        for index, (objects, (height, width)) in enumerate(zip(truth, sizes)):
            ratio = min(input_size[0] / height, input_size[1] / width)
            for slot, (x1, y1, x2, y2, class_index) in enumerate(objects[:slots]):
                w, h = x2 - x1, y2 - y1
                shift = rng.uniform(-jitter, jitter, size=2) * np.array([w, h])
                table[index, slot, :4] = torch.tensor([x1 + w / 2 + shift[0], y1 + h / 2 + shift[1], w, h]) * ratio
                table[index, slot, 4] = 1.0 - rng.uniform(0, 0.5) * (jitter > 0)
                table[index, slot, 5 + class_index] = 1.0
        self.register_buffer("table", table)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Look up each image's predictions by the index in its first pixel."""
        indices = torch.round(images[:, 0, 0, 0].float() / self.index_scale).long()
        return self.table[indices] + 0 * self.anchor


def evaluate_in_process_group(rank: int, world_size: int, init_file: str, json_file: str, result_dir: str) -> None:
    """One rank of a gloo group: evaluate its share with the jittered oracle and save (AP50:95, AP50)."""
    from yolox.evaluators import COCOEvaluator

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        dataset = LetterboxedGroundTruth(Path(json_file), (128, 160))
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=False)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler)
        evaluator = COCOEvaluator(loader, (128, 160), confthre=0.01, nmsthre=0.65, num_classes=len(dataset.class_ids))
        model = OracleModel(*coco_truth(dataset), (128, 160), len(dataset.class_ids), jitter=0.2)
        ap50_95, ap50, _ = evaluator.evaluate(model, distributed=True)
        np.save(os.path.join(result_dir, f"rank{rank}.npy"), np.array([ap50_95, ap50]))
    finally:
        dist.destroy_process_group()
