"""The PyTorch-free inference path: letterbox, decode, NMS, and onnxruntime end to end versus PyTorch."""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision

from yolox.utils import boxes as torch_boxes
from yolox.utils.errors import UserError
from yolox.utils.onnx_inference import (
    anchor_grid,
    decode_outputs,
    find_images,
    letterbox,
    nms,
    postprocess,
    read_image,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model(calibrate_batchnorm):
    """``tiny_model(attention=None, num_classes=3, test_size=(64, 64))``: a small YOLOX and its exp.

    Its BatchNorm statistics are set on generated images so predictions are decisive and varied: randomly
    initialised, un-calibrated networks give near-constant outputs, which would make parity and NMS
    comparisons trivial or tie-ridden.
    """
    from yolox.exp import get_exp

    def build(attention=None, num_classes=3, test_size=(64, 64)):
        exp = get_exp(None, "yolox-s")
        exp.depth, exp.width, exp.num_classes = 0.33, 0.125, num_classes
        exp.attention, exp.test_size = attention, test_size
        torch.manual_seed(0)
        model = exp.get_model().eval()
        calibrate_batchnorm(model, shapes_batch(test_size))
        with torch.no_grad():
            for conv in model.head.obj_preds:
                conv.weight.mul_(2.0)
                conv.bias.zero_()
            for conv in model.head.cls_preds:
                conv.weight.mul_(4.0)
                conv.bias.zero_()
            for conv in model.head.reg_preds:
                conv.bias[2:4].add_(1.0)  # boxes about e times larger so that neighbours overlap for NMS
        return exp, model

    return build


def shapes_image(height=100, width=140, seed=0):
    """A BGR image with a few filled shapes on a gradient."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = np.linspace(20, 200, width, dtype=np.uint8)[None, :, None]
    for _ in range(4):
        x, y = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 30)), y + int(rng.integers(10, 30))), color, -1)
    return image


def shapes_batch(input_hw, seeds=(0, 1, 2, 3)):
    """Letterboxed shapes images as a network input batch."""
    return torch.stack([torch.from_numpy(letterbox(shapes_image(seed=seed), input_hw)[0]) for seed in seeds])


def sorted_rows(rows):
    """Rows ordered by score then box so two equivalent results compare position by position."""
    rows = np.asarray(rows, dtype=np.float64)
    return rows[np.lexsort((rows[:, 0], rows[:, 1], -(rows[:, 4] * rows[:, 5])))]


def test_module_does_not_import_torch():
    code = ("import sys, yolox.utils.onnx_inference, yolox.utils.visualize; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"importing the onnxruntime path pulled in torch: {result.stderr}"


def test_letterbox_matches_the_reference_val_transform(reference_dir):
    fixture = torch.load(reference_dir / "parity_utils.pt", weights_only=True)["val_transform"]
    image = np.asarray(fixture["image_bgr"], dtype=np.uint8)
    tensor, ratio = letterbox(image, fixture["input_size"])
    np.testing.assert_array_equal(tensor, np.asarray(fixture["val_transform"]))
    assert ratio == pytest.approx(min(416 / 375, 416 / 500))


@pytest.mark.parametrize("shape, size", [((375, 500), (416, 416)), ((50, 30), (64, 96)), ((200, 90), (96, 64))])
def test_letterbox_matches_val_transform(shape, size):
    from yolox.data.data_augment import ValTransform

    image = np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8)
    expected, _ = ValTransform()(image, None, size)
    tensor, ratio = letterbox(image, size)
    np.testing.assert_array_equal(tensor, expected)
    assert tensor.dtype == np.float32 and tensor.shape == (3, *size)
    # The image sits top-left; the bottom/right padding is 114.
    assert (tensor[:, int(shape[0] * ratio):, :] == 114).all() and (tensor[:, :, int(shape[1] * ratio):] == 114).all()


def test_nms_matches_torchvision():
    rng = np.random.default_rng(2)
    corners = rng.uniform(0, 80, (200, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (200, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(0, 1, 200).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, threshold), expected)


@pytest.mark.parametrize("agnostic", [False, True])
def test_postprocess_matches_the_reference(reference_dir, agnostic):
    fixture = torch.load(reference_dir / "parity_utils.pt", weights_only=True)["postprocess"]
    prediction = fixture["prediction"].numpy()
    results = postprocess(prediction, 80, conf_thre=0.3, nms_thre=0.45, class_agnostic=agnostic)
    for mine, official in zip(results, fixture[f"out_agnostic_{agnostic}"]):
        if official is None:
            assert mine is None
            continue
        np.testing.assert_allclose(sorted_rows(mine), sorted_rows(official.numpy()), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("agnostic", [False, True])
def test_postprocess_matches_the_torch_postprocess(agnostic):
    rng = np.random.default_rng(3)
    prediction = np.concatenate([rng.uniform(10, 60, (2, 300, 2)), rng.uniform(4, 30, (2, 300, 2)),
                                 rng.uniform(0, 1, (2, 300, 7))], axis=2).astype(np.float32)
    prediction[1, :, 4] = 0.01  # nothing survives in the second image
    expected = torch_boxes.postprocess(torch.from_numpy(prediction), 6, 0.3, 0.45, class_agnostic=agnostic)
    results = postprocess(prediction, 6, 0.3, 0.45, class_agnostic=agnostic)
    assert results[1] is None and expected[1] is None
    np.testing.assert_allclose(sorted_rows(results[0]), sorted_rows(expected[0].numpy()), rtol=1e-6, atol=1e-5)


def test_decode_matches_the_head_on_a_non_square_input(tiny_model):
    _, model = tiny_model(test_size=(64, 96))
    images = shapes_batch((64, 96), seeds=(0, 1))
    with torch.no_grad():
        decoded = model(images).numpy()
        model.head.decode_in_inference = False
        raw = model(images).numpy()
    np.testing.assert_allclose(decode_outputs(raw, (64, 96)), decoded, rtol=1e-5, atol=1e-4)
    cells, strides = anchor_grid((64, 96))
    assert cells.shape == (8 * 12 + 4 * 6 + 2 * 3, 2) and strides[-1, 0] == 32
    with pytest.raises(UserError, match="anchors"):
        decode_outputs(raw, (96, 96))


def test_image_helpers_reject_bad_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="no images"):
        find_images(tmp_path)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(UserError, match="not an image"):
        read_image(fake)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    cv2.imwrite(str(nested / "x.png"), np.zeros((4, 4, 3), np.uint8))
    assert find_images(tmp_path) == [nested / "x.png", fake]


@pytest.mark.parametrize("decode_in_inference", [False, True])
def test_onnxruntime_path_gives_the_pytorch_demo_boxes(tmp_path, decode_in_inference, tiny_model):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    from yolox.utils.export import export_metadata, export_onnx, prepare_for_export
    from yolox.utils.onnx_inference import OnnxDetector
    from yolox.utils.predictor import Predictor

    names = ("red", "green", "blue")
    exp, model = tiny_model(test_size=(64, 96))
    image = shapes_image()
    path = tmp_path / "model.onnx"
    metadata = export_metadata(exp, names, (64, 96), decode_in_inference, dynamic_hw=True)
    export_onnx(prepare_for_export(model, decode_in_inference), path, (64, 96), metadata, dynamic_hw=True)
    model.head.decode_in_inference = True
    detector = OnnxDetector(path)
    assert detector.class_names == list(names) and detector.input_hw == (64, 96)
    for agnostic in (False, True):
        predictor = Predictor(model, 3, (64, 96), conf=0.3, nms=0.45, class_names=names, class_agnostic=agnostic)
        expected, _ = predictor.predict(image)
        without_nms, _ = Predictor(model, 3, (64, 96), conf=0.3, nms=1.0).predict(image)
        assert 3 < len(expected) < len(without_nms), "the test model should keep some boxes and suppress others"
        found = detector.detect(image, conf=0.3, nms_thre=0.45, class_agnostic=agnostic)
        assert len(found) == len(expected)
        # Padding areas give equal scores, so match boxes by position rather than by rank.
        distance = np.abs(found.boxes[:, None, :] - expected.boxes[None, :, :]).max(axis=2)
        match = distance.argmin(axis=1)
        assert sorted(match.tolist()) == list(range(len(expected)))
        # float32 differences between the runtimes: 1e-4 of the image size is far below a pixel.
        assert distance.min(axis=1).max() < 1e-4 * max(image.shape)
        np.testing.assert_allclose(found.scores, expected.scores[match], rtol=1e-4)
        np.testing.assert_array_equal(found.class_ids, expected.class_ids[match])


def test_command_line_draws_results_and_reports_errors(tmp_path, capsys, tiny_model):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    from yolox.utils.export import export_metadata, export_onnx, prepare_for_export
    from yolox.utils.onnx_inference import OnnxDetector, main

    exp, model = tiny_model()
    path = tmp_path / "fixed.onnx"
    export_onnx(prepare_for_export(model, False), path, (64, 64), export_metadata(exp, None, (64, 64), False))
    images = tmp_path / "images" / "sub"
    images.mkdir(parents=True)
    cv2.imwrite(str(images / "one.png"), shapes_image())
    out = tmp_path / "out"
    assert main([str(path), str(tmp_path / "images"), "--output_dir", str(out), "--conf", "0.3"]) == 0
    drawn = cv2.imread(str(out / "sub" / "one.png"))
    assert drawn is not None and (drawn != shapes_image()).any()
    assert re.search(r"one\.png: \d+ detections \(\d+ class \d[^)]*\), inference \d", capsys.readouterr().out)

    assert main([str(tmp_path / "missing.onnx"), str(images)]) == 2
    assert "missing.onnx does not exist" in capsys.readouterr().err
    with pytest.raises(UserError, match="fixed input"):
        OnnxDetector(path, input_hw=(96, 96))


def test_size_argument_parsing():
    import argparse

    from yolox.utils.onnx_inference import parse_size
    from yolox.utils.predictor import input_size

    assert parse_size("640") == (640, 640) and parse_size("480, 640") == (480, 640)
    for bad in ("", "a", "1,2,3"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
            parse_size(bad)
    assert input_size(None, (416, 416)) == (416, 416) and input_size((64, 96), (416, 416)) == (64, 96)
    with pytest.raises(UserError, match="multiples of 32"):
        input_size((100, 64), (416, 416))
