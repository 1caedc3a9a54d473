"""Numeric parity with the official YOLOX (reference fixtures) and of the batched SimOTA with a direct version."""

import pytest
import torch
import torch.nn.functional as F

from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead, init_bn
from yolox.utils.boxes import bboxes_iou

FIXTURES = ["parity_nano.pt", "parity_narrow_s.pt"]
LOSS_KEYS = ["total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"]


@pytest.fixture(scope="module", params=FIXTURES)
def fixture_and_model(request, reference_dir):
    """A reference fixture and a model built from its exp with its weights loaded strictly."""
    data = torch.load(reference_dir / request.param, weights_only=True)
    exp = data["exp"]
    model = YOLOX(
        YOLOPAFPN(exp["depth"], exp["width"], depthwise=exp["depthwise"], act=exp["act"]),
        YOLOXHead(exp["num_classes"], exp["width"], depthwise=exp["depthwise"], act=exp["act"]),
    )
    init_bn(model)
    model.load_state_dict(data["state_dict"], strict=True)
    return data, model


def test_eval_output_matches_official(fixture_and_model):
    data, model = fixture_and_model
    with torch.no_grad():
        output = model.eval()(data["imgs"])
    expected = data["eval_output"]
    assert output.shape == expected.shape
    assert (output[..., :4] - expected[..., :4]).abs().max() <= 0.05
    assert (output[..., 4:] - expected[..., 4:]).abs().max() <= 1e-4


@pytest.mark.parametrize("use_l1", [False, True])
def test_train_losses_match_official(fixture_and_model, use_l1):
    data, model = fixture_and_model
    model.train()
    model.head.use_l1 = use_l1
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():
            losses = model(data["imgs"], data["targets"])
    finally:
        model.load_state_dict(state)  # train-mode BN updated its running statistics
        model.head.use_l1 = False
    expected = data[f"train_losses_l1_{use_l1}"]
    for key in LOSS_KEYS:
        got, want = float(losses[key]), float(expected[key])
        assert got == pytest.approx(want, rel=1e-3, abs=1e-6), f"{key}: {got} vs official {want}"


def direct_simota(gt_boxes, gt_classes, box_preds, obj_logits, cls_logits, grids, strides, num_classes):
    """One image, written straight from the SimOTA description with loops over boxes (the test oracle).

    Returns the foreground mask, matched box per foreground anchor, its IoU, and how many anchors were contested.
    """
    centers = (grids + 0.5) * strides
    radius = 1.5 * strides
    lower, upper = gt_boxes[:, None, :2] - radius, gt_boxes[:, None, :2] + radius
    in_center = ((centers > lower) & (centers < upper)).all(dim=2)  # [G, A]
    candidates = in_center.any(dim=0).nonzero().squeeze(1)
    ious = bboxes_iou(gt_boxes, box_preds[candidates], xyxy=False)
    probs = (cls_logits[candidates].sigmoid() * obj_logits[candidates, None].sigmoid()).sqrt()
    one_hot = F.one_hot(gt_classes, num_classes).float()
    cls_cost = torch.stack([F.binary_cross_entropy(probs, row.expand_as(probs), reduction="none").sum(1) for row in one_hot])
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e6 * (~in_center[:, candidates]).float()

    matching = torch.zeros_like(cost, dtype=torch.bool)
    top = min(10, len(candidates))
    for g in range(len(gt_boxes)):
        k = max(1, int(ious[g].topk(top).values.sum()))
        matching[g, cost[g].topk(k, largest=False).indices] = True
    contested = int((matching.sum(dim=0) > 1).sum())
    for a in range(matching.shape[1]):
        if matching[:, a].sum() > 1:
            matching[:, a] = False
            matching[cost[:, a].argmin(), a] = True
    fg = torch.zeros(len(grids), dtype=torch.bool)
    fg[candidates] = matching.any(dim=0)
    keep = matching.any(dim=0)
    return fg, matching[:, keep].float().argmax(dim=0), (matching * ious).sum(dim=0)[keep], contested


def test_batched_simota_equals_direct_version():
    torch.manual_seed(0)
    head = YOLOXHead(num_classes=4)
    shapes = [(8, 8), (4, 4), (2, 2)]
    grids, strides = head._anchor_grid(shapes, torch.float32, torch.device("cpu"))
    num_anchors, batch, max_gts = grids.shape[0], 3, 7
    # Predictions near the anchors, and crowded boxes, so that boxes compete for anchors.
    box_preds = torch.cat([(grids + 0.5 + torch.randn(batch, num_anchors, 2) * 0.3) * strides,
                           strides * torch.exp(torch.randn(batch, num_anchors, 2) * 0.5 + 1.0)], dim=2)
    obj_logits, cls_logits = torch.randn(batch, num_anchors), torch.randn(batch, num_anchors, 4)
    counts = [7, 3, 0]
    gt_boxes = torch.zeros(batch, max_gts, 4)
    gt_classes = torch.zeros(batch, max_gts, dtype=torch.long)
    gt_valid = torch.zeros(batch, max_gts, dtype=torch.bool)
    for b, count in enumerate(counts):
        gt_boxes[b, :count, :2] = torch.rand(count, 2) * 40 + 12
        gt_boxes[b, :count, 2:] = torch.rand(count, 2) * 30 + 6
        gt_classes[b, :count] = torch.randint(0, 4, (count,))
        gt_valid[b, :count] = True

    fg_mask, matched_gt, matched_iou = head.get_assignments(
        gt_boxes, gt_classes, gt_valid, box_preds, obj_logits, cls_logits, grids, strides
    )
    assert not fg_mask[2].any(), "an image without boxes has no foreground"
    contested = 0
    for b, count in enumerate(counts[:2]):
        fg, gt_index, iou, image_contested = direct_simota(
            gt_boxes[b, :count], gt_classes[b, :count], box_preds[b], obj_logits[b], cls_logits[b], grids, strides, 4
        )
        assert torch.equal(fg_mask[b], fg)
        assert torch.equal(matched_gt[b][fg], gt_index)
        assert torch.allclose(matched_iou[b][fg], iou)
        contested += image_contested
    assert contested > 0, "the scene should make boxes claim the same anchor, to exercise the tie rule"
