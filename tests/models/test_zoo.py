"""Model zoo: official state-dict layout and parameter counts, forward shapes, and bad-input errors."""

import json

import pytest
import torch
from torch import nn

from yolox.models import YOLOFPN, YOLOPAFPN, YOLOX, YOLOXHead, init_bn

ZOO = ["yolox-nano", "yolox-tiny", "yolox-s", "yolox-m", "yolox-l", "yolox-x", "yolov3"]


def build_zoo_model(name: str, depth: float, width: float, num_classes: int = 80) -> YOLOX:
    """Build a default-zoo model the way the default exps do (nano is depthwise; yolov3 is Darknet-53 + FPN)."""
    if name == "yolov3":
        return YOLOX(YOLOFPN(), YOLOXHead(num_classes, 1.0, in_channels=[128, 256, 512], act="lrelu"))
    depthwise = name == "yolox-nano"
    return YOLOX(
        YOLOPAFPN(depth, width, depthwise=depthwise), YOLOXHead(num_classes, width, depthwise=depthwise)
    )


def tiny_model(num_classes: int = 3, **neck_options) -> YOLOX:
    """A narrow YOLOX for quick forward passes on small images."""
    model = YOLOX(YOLOPAFPN(0.33, 0.125, **neck_options), YOLOXHead(num_classes, 0.125))
    init_bn(model)
    model.head.initialize_biases(1e-2)
    return model


@pytest.fixture(scope="module")
def reference_zoo(reference_dir) -> dict:
    """The official state-dict layouts and parameter counts."""
    return json.loads((reference_dir / "yolox_state_dicts.json").read_text())


@pytest.mark.parametrize("name", ZOO)
def test_state_dict_layout_and_params_match_official(reference_zoo, name):
    reference = reference_zoo[name]
    with torch.device("meta"):  # shapes only: no memory, no weight initialisation cost
        model = build_zoo_model(name, reference["depth"], reference["width"])
    layout = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert layout == reference["state_dict"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == reference["params"]


def test_init_bn_sets_eps_and_momentum():
    model = init_bn(tiny_model(), eps=1e-3, momentum=0.03)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.03 for m in norms)


def test_initialize_biases_sets_the_prior():
    head = YOLOXHead(4, 0.125)
    head.initialize_biases(0.01)
    for conv in list(head.cls_preds) + list(head.obj_preds):
        assert torch.allclose(conv.bias.sigmoid(), torch.full_like(conv.bias, 0.01))


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_eval_forward_shape_and_ranges(size):
    torch.manual_seed(0)
    model = tiny_model(num_classes=3).eval()
    height, width = size
    with torch.no_grad():
        out = model(torch.rand(2, 3, height, width) * 255)
    anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    assert out.shape == (2, anchors, 5 + 3)
    assert torch.all((out[..., 4:] >= 0) & (out[..., 4:] <= 1)), "objectness and class scores are probabilities"
    assert torch.all(out[..., 2:4] > 0)
    model.head.decode_in_inference = False
    with torch.no_grad():
        raw = model(torch.rand(2, 3, height, width) * 255)
    assert raw.shape == out.shape


def test_eval_decoding_places_boxes_on_the_anchor_grid():
    head = YOLOXHead(2, 0.125, in_channels=[256, 512, 1024]).eval()
    for conv in list(head.reg_preds):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    features = [torch.rand(1, int(c * 0.125), 64 // s, 64 // s) for c, s in zip([256, 512, 1024], [8, 16, 32])]
    with torch.no_grad():
        out = head(features)
    # Zero offsets decode to the cell corner (col, row) x stride and a size of one stride.
    assert out[0, 1, :4].tolist() == [8.0, 0.0, 8.0, 8.0]
    assert out[0, 8, :4].tolist() == [0.0, 8.0, 8.0, 8.0]
    assert out[0, 64, :4].tolist() == [0.0, 0.0, 16.0, 16.0]


def test_yolov3_forward_shape():
    model = YOLOX(YOLOFPN(depth=21), YOLOXHead(2, 1.0, in_channels=[128, 256, 512], act="lrelu")).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 64) * 255)
    assert out.shape == (1, 4 * 8 + 2 * 4 + 1 * 2, 7)


def _targets(batch: int, max_labels: int = 6) -> torch.Tensor:
    """Two boxes in the first image, none in the others, zero-padded to ``max_labels`` rows."""
    targets = torch.zeros(batch, max_labels, 5)
    targets[0, 0] = torch.tensor([1.0, 20.0, 24.0, 16.0, 20.0])
    targets[0, 1] = torch.tensor([2.0, 44.0, 40.0, 30.0, 24.0])
    return targets


@pytest.mark.parametrize("use_l1", [False, True])
def test_train_forward_returns_finite_losses_and_gradients(use_l1):
    torch.manual_seed(0)
    model = tiny_model(num_classes=3).train()
    model.head.use_l1 = use_l1
    losses = model(torch.rand(2, 3, 64, 64) * 255, _targets(2))
    assert set(losses) == {"total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"}
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    assert losses["num_fg"] >= 1
    assert (losses["l1_loss"] > 0) == use_l1
    expected_total = losses["iou_loss"] + losses["conf_loss"] + losses["cls_loss"] + losses["l1_loss"]
    assert torch.allclose(losses["total_loss"], expected_total)
    losses["total_loss"].backward()
    assert model.head.cls_preds[0].weight.grad is not None
    assert model.backbone.backbone.stem.conv.conv.weight.grad.abs().sum() > 0


def test_train_forward_without_any_box_only_has_objectness_loss():
    model = tiny_model().train()
    losses = model(torch.rand(2, 3, 64, 64) * 255, torch.zeros(2, 4, 5))
    assert losses["iou_loss"] == 0 and losses["cls_loss"] == 0 and losses["conf_loss"] > 0


def test_attention_blocks_live_under_one_prefix_per_level():
    plain = tiny_model()
    assert not [key for key in plain.state_dict() if ".attn." in key]
    model = tiny_model(attention="se", attention_levels=("dark3", "dark5"))
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(key.startswith(("backbone.attn.dark3.", "backbone.attn.dark5.")) for key in extra)
    assert set(model.backbone.attn) == {"dark3", "dark5"}
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 84, 8)


@pytest.mark.parametrize("levels", [("dark2",), ("dark3", "p4")])
def test_bad_attention_level_is_named(levels):
    with pytest.raises(ValueError, match=r"attention level '(dark2|p4)'.*dark3, dark4, dark5"):
        YOLOPAFPN(0.33, 0.125, attention="se", attention_levels=levels)


def test_input_size_not_a_multiple_of_32_is_rejected():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="100x64"):
        model(torch.rand(1, 3, 100, 64))


@pytest.mark.parametrize("num_classes", [0, -1])
def test_num_classes_below_one_is_rejected(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        YOLOXHead(num_classes)


def test_train_mode_needs_targets_and_valid_classes():
    model = tiny_model(num_classes=3).train()
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="targets"):
        model(images)
    with pytest.raises(ValueError, match="class index 7"):
        model(images, torch.tensor([[[7.0, 20.0, 20.0, 10.0, 10.0]]]))
    with pytest.raises(ValueError, match="labels must be"):
        model(images, torch.zeros(1, 4, 4))
