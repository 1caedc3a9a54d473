"""YOLO-format data (ultralytics layout): reading, the start-up checks, the COCO form and its conversion."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolox.data import COCODataset, YOLODataset
from yolox.data.datasets.yolo import label_path_for, read_data_yaml, read_label_file, yolo_split_to_coco
from yolox.data.shapes import SHAPE_CLASSES, generate_shapes_dataset
from yolox.utils.errors import UserError


@pytest.fixture(scope="module")
def twin_sets(tmp_path_factory) -> tuple[Path, Path]:
    """The same shapes images written in the YOLO layout and in COCO format."""
    root = tmp_path_factory.mktemp("twins")
    yolo = generate_shapes_dataset(root / "yolo", num_train=6, num_val=3, img_size=(96, 128), seed=1, layout="yolo")
    coco = generate_shapes_dataset(root / "coco", num_train=6, num_val=3, img_size=(96, 128), seed=1)
    return yolo, coco


def test_yolo_split_reads_the_same_boxes_as_the_coco_twin(twin_sets) -> None:
    """Normalised labels written with 6 decimals come back within 1e-3 px of the COCO boxes, same classes."""
    yolo, coco = twin_sets
    for split in ("train", "val"):
        ours = YOLODataset(yolo / "data.yaml", split, img_size=(96, 128), num_classes=5)
        reference = COCODataset(str(coco), f"instances_{split}.json", split, img_size=(96, 128))
        assert ours.class_names == SHAPE_CLASSES and len(ours) == len(reference)
        for mine, theirs in zip(ours.records, reference.records):
            assert (mine.width, mine.height) == (128, 96)
            np.testing.assert_allclose(mine.boxes, theirs.boxes, atol=1e-3)
            assert mine.classes.tolist() == theirs.classes.tolist()


def test_layout_rules_names_mapping_txt_lists_and_background(tmp_path) -> None:
    """names as a list, a .txt list with ./ paths relative to it, a missing label file as background,
    a polygon line as the box around its points, blank lines ignored."""
    images = tmp_path / "data" / "images" / "train"
    images.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(images / name), np.zeros((50, 100, 3), np.uint8))
    labels = tmp_path / "data" / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n")
    (tmp_path / "data" / "train.txt").write_text("./images/train/a.png\n./images/train/b.png\n")
    (tmp_path / "data.yaml").write_text("path: data\ntrain: train.txt\nval: images/train\nnames: [cat, dog]\nnc: 2\n")
    config = read_data_yaml(tmp_path / "data.yaml")
    assert config.names == ("cat", "dog") and config.root == tmp_path / "data"
    assert label_path_for(images / "a.png") == labels / "a.txt"
    coco = yolo_split_to_coco(config, "train")
    assert [image["file_name"] for image in coco["images"]] == ["images/train/a.png", "images/train/b.png"]
    boxes = {ann["category_id"]: ann["bbox"] for ann in coco["annotations"]}
    np.testing.assert_allclose(boxes[2], [40, 15, 20, 20])  # dog: cx 50, cy 25, 20 x 20 px
    np.testing.assert_allclose(boxes[1], [10, 10, 20, 20])  # cat: the polygon's x 0.1..0.3, y 0.2..0.6
    dataset = YOLODataset(tmp_path / "data.yaml", "train", img_size=(64, 64), num_classes=2)
    assert [len(record.boxes) for record in dataset.records] == [2, 0]  # b.png has no label file: background


def _one_label_set(tmp_path: Path, label_text: str, yaml_text: str = "path: .\ntrain: images\nval: images\nnames: [a, b]\n"):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "images" / "x.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "labels" / "x.txt").write_text(label_text)
    (tmp_path / "data.yaml").write_text(yaml_text)
    return tmp_path / "data.yaml"


@pytest.mark.parametrize("label_text, message", [
    ("0 0.5 0.5 0.2 0.2\n1 12 16 8 8\n", r"x.txt:2: '1 12 16 8 8' has coordinates outside 0..1 \(pixels instead"),
    ("0 0.5 0.5 0.2\n", r"x.txt:1: '0 0.5 0.5 0.2' has 4 fields, expected 5"),
    ("2 0.5 0.5 0.2 0.2\n", r"x.txt:1: .*class 2 is not one of 0..1"),
    ("0.5 0.5 0.5 0.2 0.2\n", r"x.txt:1: .*class 0.5 is not one of 0..1"),
    ("0 0.5 0.5 0.2 nan\n", r"x.txt:1: .*outside 0..1"),
    ("0 0.5 0.5 0.2 wide\n", r"x.txt:1: .*not a number"),
])
def test_a_bad_label_line_names_the_file_and_line(tmp_path, label_text, message) -> None:
    data_yaml = _one_label_set(tmp_path, label_text)
    with pytest.raises(UserError, match=message):
        YOLODataset(data_yaml, "train", img_size=(32, 32), num_classes=2)


@pytest.mark.parametrize("yaml_text, num_classes, message", [
    ("path: .\ntrain: images\nnames: [a, b]\n", 3, r"names 2 classes but the exp sets num_classes = 3"),
    ("path: .\ntrain: images\n", 2, r"has no 'names'"),
    ("path: .\ntrain: images\nnames: [a, b]\nnc: 3\n", 2, r"nc is 3 but 'names' lists 2"),
    ("path: .\ntrain: pictures\nnames: [a, b]\n", 2, r"train entry 'pictures' is neither a folder nor a .txt list"),
    ("path: .\nval: images\nnames: [a, b]\n", 2, r"has no 'train' entry"),
    ("path: elsewhere\ntrain: images\nnames: [a, b]\n", 2, r"path 'elsewhere' is not a folder"),
    ("path: .\ntrain: images\nnames: {0: a, 2: b}\n", 2, r"keys of 'names' must be 0..1 without gaps"),
    ("path: .\ntrain: [images\nnames: [a, b]\n", 2, r"is not valid YAML at line"),
])
def test_data_yaml_mistakes_are_one_clear_line(tmp_path, yaml_text, num_classes, message) -> None:
    data_yaml = _one_label_set(tmp_path, "0 0.5 0.5 0.2 0.2\n", yaml_text)
    with pytest.raises(UserError, match=message):
        YOLODataset(data_yaml, "train", img_size=(32, 32), num_classes=num_classes)


def test_missing_pyyaml_names_the_extra(tmp_path, monkeypatch) -> None:
    import builtins

    data_yaml = _one_label_set(tmp_path, "")
    real_import = builtins.__import__

    def without_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_yaml)
    with pytest.raises(UserError, match=r'needs PyYAML: pip install -e "\.\[yolo\]"'):
        read_data_yaml(data_yaml)


def test_read_label_file_of_an_empty_file_has_no_rows(tmp_path) -> None:
    (tmp_path / "empty.txt").write_text("\n")
    assert read_label_file(tmp_path / "empty.txt", 3).shape == (0, 5)


def test_convert_dataset_writes_coco_json_that_trains_as_coco(twin_sets, tmp_path, capsys) -> None:
    """tools/convert_dataset.py: COCO JSON per split, boxes equal to the COCO twin's, exp keys printed."""
    from yolox.cli.convert_dataset import main

    yolo, coco = twin_sets
    out = tmp_path / "annotations"
    assert main([str(yolo / "data.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train_ann instances_train.json train_name . val_ann instances_val.json val_name . num_classes 5" in printed
    converted = json.loads((out / "instances_val.json").read_text())
    reference = json.loads((coco / "annotations" / "instances_val.json").read_text())
    assert [c["name"] for c in converted["categories"]] == [c["name"] for c in reference["categories"]]
    assert [a["category_id"] for a in converted["annotations"]] == [a["category_id"] for a in reference["annotations"]]
    np.testing.assert_allclose([a["bbox"] for a in converted["annotations"]],
                               [a["bbox"] for a in reference["annotations"]], atol=1e-3)
    # By default the files go to <root>/annotations, where the printed exp keys point a COCO dataset.
    assert main([str(yolo / "data.yaml")]) == 0
    as_coco = COCODataset(str(yolo), "instances_val.json", ".", img_size=(96, 128))
    direct = YOLODataset(yolo / "data.yaml", "val", img_size=(96, 128))
    assert [r.path for r in as_coco.records] == [r.path for r in direct.records]
    for converted_record, direct_record in zip(as_coco.records, direct.records):
        np.testing.assert_array_equal(converted_record.boxes, direct_record.boxes)
    assert main([str(yolo / "data.yaml"), "--splits", "test"]) == 2
    assert "has no split test" in capsys.readouterr().err


YOLO_EXP = '''
from yolox.exp import Exp as BaseExp


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 5
        self.depth, self.width = 0.33, 0.125
        self.input_size = self.test_size = (64, 64)
        self.multiscale_range = 0
        self.dataset_format = "yolo"
        self.data_yaml = {data_yaml!r}
        self.data_num_workers = 0
        self.max_epoch, self.warmup_epochs, self.no_aug_epochs = 2, 1, 1
        self.print_interval = self.eval_interval = 1
        self.seed = 0
        self.output_dir = {output_dir!r}
        self.exp_name = "yolo_tiny"
        self.test_conf = 1e-4  # an untrained model's scores are low: keep some detections to score
'''


@pytest.mark.slow  # two short epochs of training and one evaluation command (about 10 s)
def test_a_yolo_format_set_trains_and_evaluates_with_the_coco_metrics(tmp_path) -> None:
    from yolox.cli.eval import main as eval_main
    from yolox.cli.train import main as train_main
    from yolox.core.metrics_log import read_metrics

    data = generate_shapes_dataset(tmp_path / "shapes_yolo", num_train=8, num_val=4, img_size=64, seed=0, layout="yolo")
    exp_file = tmp_path / "yolo_exp.py"
    exp_file.write_text(YOLO_EXP.format(data_yaml=str(data / "data.yaml"), output_dir=str(tmp_path / "out")))
    assert train_main(["-f", str(exp_file), "-b", "4", "--device", "cpu"]) == 0
    run_dir = tmp_path / "out" / "yolo_tiny"
    evals = [record for record in read_metrics(run_dir / "metrics.jsonl") if record["kind"] == "eval"]
    assert [record["epoch"] for record in evals] == [1, 2]
    assert eval_main(["-f", str(exp_file), "-b", "4", "--device", "cpu"]) == 0
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["metric"] == "coco" and len(results["stats"]) == 12 and set(results["per_class_AP"]) == set(SHAPE_CLASSES)


def test_edges_within_label_rounding_sit_on_the_border(tmp_path) -> None:
    """0.900001 + 0.200001 / 2 passes the right border by rounding only: the box ends at the border, no clipping."""
    data_yaml = _one_label_set(tmp_path, "0 0.900001 0.5 0.200001 0.5\n1 0.95 0.5 0.2 0.5\n")
    coco = yolo_split_to_coco(read_data_yaml(data_yaml), "train")
    first, second = (ann["bbox"] for ann in coco["annotations"])
    assert first[0] + first[2] == 32.0  # snapped to the border of the 32 px image
    assert second[0] + second[2] == pytest.approx(33.6)  # a real overshoot is kept (and clipped with a warning)
