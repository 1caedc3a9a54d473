"""Box helpers: IoU matrices, format conversions and post-processing parity with the official YOLOX."""

import numpy as np
import pytest
import torch

from yolox.utils.boxes import bboxes_iou, cxcywh2xyxy, meshgrid, postprocess, xyxy2cxcywh, xyxy2xywh


def assert_same_rows(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-4) -> None:
    """Assert both tensors hold the same rows up to ``atol``, in any order (ties may be ordered differently)."""
    assert got.shape == want.shape
    distance = torch.cdist(got.double(), want.double(), p=float("inf"))
    assert distance.min(dim=1).values.max() <= atol, "a returned row is missing from the reference"
    assert distance.min(dim=0).values.max() <= atol, "a reference row is missing from the output"


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_postprocess_matches_official(reference_dir, class_agnostic):
    data = torch.load(reference_dir / "parity_utils.pt", weights_only=True)["postprocess"]
    prediction = data["prediction"]
    before = prediction.clone()
    outputs = postprocess(prediction, num_classes=80, conf_thre=0.3, nms_thre=0.45, class_agnostic=class_agnostic)
    expected = data[f"out_agnostic_{class_agnostic}"]
    assert torch.equal(prediction, before), "postprocess must not modify its input"
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        if want is None:
            assert got is None
            continue
        assert_same_rows(got, want)
        scores = got[:, 4] * got[:, 5]
        assert torch.all(scores[:-1] >= scores[1:]), "rows are sorted by decreasing score"


def test_postprocess_class_aware_keeps_overlapping_boxes_of_other_classes():
    # Two identical boxes: class-aware NMS keeps both (different classes), agnostic keeps the better one.
    prediction = torch.zeros(2, 3, 7)
    prediction[0, 0] = torch.tensor([50, 50, 20, 20, 0.9, 0.9, 0.1])
    prediction[0, 1] = torch.tensor([50, 50, 20, 20, 0.8, 0.1, 0.9])
    prediction[0, 2] = torch.tensor([10, 10, 4, 4, 0.1, 0.5, 0.5])  # below the threshold
    aware = postprocess(prediction, num_classes=2, conf_thre=0.5, nms_thre=0.45)
    agnostic = postprocess(prediction, num_classes=2, conf_thre=0.5, nms_thre=0.45, class_agnostic=True)
    assert aware[1] is None and agnostic[1] is None
    assert aware[0].shape == (2, 7)
    assert aware[0][:, 6].tolist() == [0.0, 1.0]
    assert torch.allclose(aware[0][0, :4], torch.tensor([40.0, 40.0, 60.0, 60.0]))
    assert agnostic[0].shape == (1, 7) and agnostic[0][0, 6] == 0


def test_postprocess_rejects_wrong_class_count():
    with pytest.raises(ValueError, match="num_classes"):
        postprocess(torch.zeros(1, 4, 10), num_classes=80)


def test_bboxes_iou_values_and_formats():
    boxes_a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    boxes_b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 5.0, 10.0]])
    expected = torch.tensor([[1.0, 0.0, 0.5], [25 / 175, 25 / 175, 0.0]])
    assert torch.allclose(bboxes_iou(boxes_a, boxes_b), expected)
    cxcywh = bboxes_iou(xyxy2cxcywh(boxes_a), xyxy2cxcywh(boxes_b), xyxy=False)
    assert torch.allclose(cxcywh, expected)
    batched = bboxes_iou(boxes_a.expand(3, -1, -1), boxes_b.expand(3, -1, -1))
    assert batched.shape == (3, 2, 3) and torch.allclose(batched[2], expected)
    with pytest.raises(IndexError):
        bboxes_iou(torch.zeros(2, 5), boxes_b)


def test_box_format_conversions_round_trip_without_modifying_input():
    boxes = np.array([[10.0, 20.0, 50.0, 80.0, 0.9]], dtype=np.float32)
    original = boxes.copy()
    np.testing.assert_allclose(xyxy2xywh(boxes), [[10, 20, 40, 60, 0.9]], rtol=1e-6)
    np.testing.assert_allclose(xyxy2cxcywh(boxes), [[30, 50, 40, 60, 0.9]], rtol=1e-6)
    np.testing.assert_allclose(cxcywh2xyxy(xyxy2cxcywh(boxes)), boxes, rtol=1e-6)
    np.testing.assert_array_equal(boxes, original)
    tensor = torch.from_numpy(original)
    assert torch.allclose(cxcywh2xyxy(xyxy2cxcywh(tensor)), tensor)


def test_meshgrid_uses_matrix_indexing():
    rows, cols = meshgrid(torch.arange(2), torch.arange(3))
    assert rows.shape == cols.shape == (2, 3)
    assert rows[1].tolist() == [1, 1, 1] and cols[1].tolist() == [0, 1, 2]
