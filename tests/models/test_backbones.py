"""The backbone table and the backbone added through it alone: torchvision's MobileNetV3-Large."""

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from yolox.exp.yolox_base import Exp
from yolox.models.backbones import BACKBONE_OPTION_DEFAULTS, BACKBONES, backbone_entry, build_backbone
from yolox.models.mobilenet import MobileNetV3Trunk
from yolox.utils.errors import UserError
from yolox.utils.model_utils import fuse_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def _small_exp(backbone: str, **settings) -> Exp:
    """A 64-pixel, 3-class exp on ``backbone`` with ``settings`` applied."""
    exp = Exp()
    exp.backbone = backbone
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 3
    exp.input_size = exp.test_size = (64, 64)
    for key, value in settings.items():
        setattr(exp, key, value)
    return exp


@pytest.mark.parametrize("name", [name for name, entry in BACKBONES.items() if entry.build is not None])
def test_each_trunk_matches_its_table_line(name):
    """Levels and channels in the table are what the built trunk says of itself and returns."""
    entry = backbone_entry(name)
    with torch.device("meta"):
        trunk = build_backbone(name, BACKBONE_OPTION_DEFAULTS)
    assert tuple(trunk.out_features) == entry.levels and tuple(trunk.out_channels) == entry.channels
    assert callable(getattr(trunk, "fold_batchnorm", None)) == entry.folds_batchnorm
    assert set(entry.options) <= set(BACKBONE_OPTION_DEFAULTS)


def test_an_unknown_backbone_lists_the_table():
    with pytest.raises(UserError, match="cspdarknet, resnet18, .*, mobilenet_v3_large"):
        backbone_entry("vgg16")


def test_resnet_keys_on_another_backbone_name_the_backbones_that_read_them():
    with pytest.raises(UserError, match="block_attention='se' need a ResNet backbone: set backbone to one of resnet18"):
        _small_exp("mobilenet_v3_large", block_attention="se").validate()


def test_mobilenet_outputs_strides_8_16_32_from_torchvisions_own_layers():
    trunk = MobileNetV3Trunk().eval()
    reference = torchvision.models.mobilenet_v3_large(weights=None)
    assert list(trunk.state_dict()) == [key for key in reference.state_dict() if key.startswith("features.")]
    with torch.no_grad():
        outputs = trunk(torch.rand(2, 3, 64, 96) * 255)
    assert {level: tuple(value.shape) for level, value in outputs.items()} == {
        "c3": (2, 40, 8, 12), "c4": (2, 112, 4, 6), "c5": (2, 960, 2, 3)}


def test_mobilenet_converts_bgr_0_255_to_torchvisions_normalised_rgb():
    torch.manual_seed(0)
    trunk = MobileNetV3Trunk().eval()
    reference = torchvision.models.mobilenet_v3_large(weights=None).eval()
    reference.load_state_dict(trunk.state_dict(), strict=False)
    bgr = torch.rand(1, 3, 64, 64) * 255
    rgb = bgr.flip(1) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.features((rgb - mean) / std)
        assert torch.allclose(trunk(bgr)["c5"], expected, atol=1e-4)


def test_attention_sits_on_the_mobilenet_levels_and_a_training_step_runs():
    exp = _small_exp("mobilenet_v3_large", attention="se", attention_levels=("c3", "c5"))
    torch.manual_seed(0)
    model = exp.get_model()
    state = model.state_dict()
    assert {key.split(".")[2] for key in state if key.startswith("backbone.attn.")} == {"c3", "c5"}
    assert state["backbone.attn.c5.fc_reduce.weight"].shape[1] == 960  # on the stage output itself
    optimizer = exp.get_optimizer(batch_size=2)
    model.train()
    losses = model(torch.rand(2, 3, 64, 64) * 255, torch.tensor([[[1.0, 30.0, 30.0, 20.0, 16.0]]] * 2))
    losses["total_loss"].backward()
    optimizer.step()
    assert torch.isfinite(losses["total_loss"])
    grads = [p.grad for p in model.backbone.backbone.parameters() if p.requires_grad]
    assert any(grad is not None and grad.abs().sum() > 0 for grad in grads)


def test_mobilenet_batchnorms_fold_and_keep_the_outputs(randomize_batchnorm):
    torch.manual_seed(0)
    model = _small_exp("mobilenet_v3_large").get_model()
    randomize_batchnorm(model)
    model.eval()
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model(images)
        fuse_model(model)
        actual = model(images)
    assert [name for name, module in model.backbone.backbone.named_modules() if isinstance(module, nn.BatchNorm2d)] == []
    assert torch.allclose(actual[..., 4:], expected[..., 4:], atol=1e-4)
    assert torch.allclose(actual[..., :4], expected[..., :4], atol=1e-2)


def test_the_mobilenet_exp_builds_with_attention_on_its_levels():
    from yolox.exp import get_exp

    exp = get_exp(str(REPO_ROOT / "exps" / "mobilenet" / "yolox_mnv3_cam.py"), None, ["test_size", "64,64"])
    model = exp.get_model().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64) * 255).shape == (1, 84, 85)
    assert exp.meta()["backbone"] == "mobilenet_v3_large"
    assert {key.split(".")[2] for key in model.state_dict() if key.startswith("backbone.attn.")} == {"c3", "c4", "c5"}
