"""Model helpers: FLOP/parameter counts, conv+BN folding, freezing, mode switching, module swapping."""

import re

import pytest
import torch
from torch import nn

from yolox.models.network_blocks import BaseConv, CSPLayer, DWConv
from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import YOLOPAFPN
from yolox.models.yolox import YOLOX
from yolox.utils.model_utils import (
    adjust_status,
    freeze_module,
    fuse_conv_and_bn,
    fuse_model,
    get_model_info,
    get_model_stats,
    replace_module,
)


def _tiny_conv_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2)
    )


def test_stats_of_a_tiny_conv_model_match_the_hand_count():
    model = _tiny_conv_model()
    stats = get_model_stats(model, (16, 20))
    # 1 multiply-add = 2 FLOPs; conv biases, BN and ReLU are not counted.
    first_conv_macs = 8 * 16 * 20 * (3 * 3 * 3)
    second_conv_macs = 4 * 8 * 10 * 8
    assert stats["gflops"] == pytest.approx(2 * (first_conv_macs + second_conv_macs) / 1e9, rel=1e-12)
    assert stats["params"] == (8 * 3 * 9 + 8) + (8 + 8) + (4 * 8 + 4)
    assert isinstance(stats["params"], int) and isinstance(stats["gflops"], float)


def test_stats_restore_modes_grad_state_and_batchnorm_statistics():
    model = _tiny_conv_model().train()
    model[1].eval()
    running_mean = model[1].running_mean.clone()
    get_model_stats(model, 32)
    assert model.training and model[0].training and not model[1].training
    assert torch.is_grad_enabled()
    assert torch.equal(model[1].running_mean, running_mean)
    assert all(parameter.requires_grad for parameter in model.parameters())


@pytest.mark.parametrize("tsize", [(0, 32), (32,), "640", (32.0, 32)])
def test_stats_reject_a_bad_size(tsize):
    with pytest.raises(ValueError, match="tsize must be a"):
        get_model_stats(_tiny_conv_model(), tsize)


def test_model_info_line():
    info = get_model_info(_tiny_conv_model(), (64, 64))
    assert re.fullmatch(r"Params: \d+\.\d\dM, Gflops: \d+\.\d\d", info)


def _zoo_figures(reference_dir):
    """Map model name to (size, params M, params rounding, GFLOPs) from the official model zoo table."""
    figures = {}
    for line in (reference_dir / "yolox_defaults.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("YOLOX-") and cells[1].isdigit():
            params_rounding = 0.5 * 10 ** -len(cells[3].partition(".")[2])  # half the last printed digit
            figures[cells[0]] = (int(cells[1]), float(cells[3]), params_rounding, float(cells[4]))
    return figures


@pytest.mark.parametrize(
    "zoo_name, depth, width, depthwise, measured_size",
    [("YOLOX-Nano", 0.33, 0.25, True, 416), ("YOLOX-s", 0.33, 0.50, False, 320)],
)
def test_gflops_follow_the_official_convention(reference_dir, zoo_name, depth, width, depthwise, measured_size):
    size, params_m, params_rounding, gflops = _zoo_figures(reference_dir)[zoo_name]
    model = YOLOX(
        YOLOPAFPN(depth, width, depthwise=depthwise), YOLOXHead(80, width=width, depthwise=depthwise)
    )
    batchnorm_elements = []
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_hook(lambda _module, _inputs, output: batchnorm_elements.append(output.numel()))
    # FLOPs scale with the image area, so a smaller image is measured and scaled (cheaper on CPU).
    stats = get_model_stats(model, (measured_size, measured_size))
    area_factor = (size / measured_size) ** 2
    assert stats["params"] / 1e6 == pytest.approx(params_m, abs=params_rounding)
    # The official counter also charges 2 x 2 FLOPs per BatchNorm output element (see model_utils).
    official_convention = (stats["gflops"] + 4 * sum(batchnorm_elements) / 1e9) * area_factor
    gflops_rounding = 0.5 * 10 ** -len(str(gflops).partition(".")[2])
    assert official_convention == pytest.approx(gflops, abs=gflops_rounding)
    assert stats["gflops"] * area_factor < gflops


def test_fuse_conv_and_bn_matches_the_pair(randomize_batchnorm):
    torch.manual_seed(0)
    for conv in [nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.Conv2d(4, 6, 3, groups=2, bias=True)]:
        bn = nn.BatchNorm2d(6)
        pair = nn.Sequential(conv, bn)
        randomize_batchnorm(pair)
        pair.eval()
        fused = fuse_conv_and_bn(conv, bn)
        x = torch.randn(2, 4, 9, 7)
        with torch.no_grad():
            assert torch.allclose(fused(x), pair(x), atol=1e-5)
        assert not fused.weight.requires_grad and fused.bias is not None


def test_fuse_conv_and_bn_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="6 features"):
        fuse_conv_and_bn(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(5))
    with pytest.raises(TypeError, match="BatchNorm2d"):
        fuse_conv_and_bn(nn.Conv2d(3, 6, 1), nn.LayerNorm(6))


@pytest.mark.parametrize("attention_name", [None, "cam"])
def test_fuse_model_keeps_outputs(attention_name, randomize_batchnorm):
    torch.manual_seed(0)
    model = YOLOX(
        YOLOPAFPN(0.33, 0.25, depthwise=True, attention=attention_name), YOLOXHead(3, width=0.25, depthwise=True)
    )
    randomize_batchnorm(model)
    model.eval()
    images = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        expected = model(images)
        fuse_model(model)
        fused_output = model(images)
    assert torch.allclose(fused_output, expected, atol=1e-4, rtol=1e-4)
    conv_units = [module for module in model.modules() if isinstance(module, BaseConv)]
    assert conv_units and all(not hasattr(unit, "bn") for unit in conv_units)
    if attention_name == "cam":  # attention blocks are not conv units: their BatchNorm stays
        assert all(hasattr(block, "bn") for block in model.backbone.attn.values())
    assert fuse_model(model) is model  # a second call finds nothing left to fold


def test_fuse_model_on_blocks(randomize_batchnorm):
    torch.manual_seed(0)
    model = nn.Sequential(BaseConv(3, 8, 3, 2), DWConv(8, 8, 3), CSPLayer(8, 8, n=1))
    randomize_batchnorm(model)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(fuse_model(model)(x), expected, atol=1e-4)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def test_adjust_status_restores_each_submodule_mode():
    model = _tiny_conv_model().train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    with adjust_status(model, training=False) as inside:
        assert inside is model
        assert not any(module.training for module in model.modules())
    assert model.training and model[0].training and not model[1].training
    with adjust_status(model, training=True):
        assert all(module.training for module in model.modules())
    assert not model[1].training


def test_adjust_status_restores_after_an_error():
    model = _tiny_conv_model().train()
    with pytest.raises(RuntimeError, match="boom"):
        with adjust_status(model, training=False):
            raise RuntimeError("boom")
    assert all(module.training for module in model.modules())


def test_freeze_whole_module():
    model = _tiny_conv_model().train()
    assert freeze_module(model) is model
    assert not any(parameter.requires_grad for parameter in model.parameters())
    assert not any(module.training for module in model.modules())


def test_freeze_named_submodule_only():
    model = nn.Sequential()
    model.add_module("stem", _tiny_conv_model())
    model.add_module("head", nn.Conv2d(4, 2, 1))
    model.train()
    freeze_module(model, "stem.1")
    assert not model.stem[1].training and not model.stem[1].weight.requires_grad
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert frozen == {"stem.1.weight", "stem.1.bias"}
    assert model.training and model.head.training


def test_freeze_unknown_name_lists_children():
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 4, 1))
    with pytest.raises(ValueError, match="no submodule 'neck'.*stem"):
        freeze_module(model, "neck")


def test_replace_module_swaps_every_instance():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)))
    model[2].eval()
    assert replace_module(model, nn.ReLU, nn.SiLU) is model
    assert isinstance(model[1], nn.SiLU) and isinstance(model[2][0], nn.SiLU)
    assert not any(isinstance(module, nn.ReLU) for module in model.modules())
    assert model[1].training and not model[2][0].training  # each replacement keeps the old mode


def test_replace_module_with_a_function_and_at_the_root():
    model = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(1, 1, 1))
    replace_module(model, nn.LeakyReLU, nn.LeakyReLU, lambda old, new_type: new_type(old.negative_slope / 2))
    assert model[0].negative_slope == pytest.approx(0.1)
    assert isinstance(replace_module(nn.ReLU(), nn.ReLU, nn.SiLU), nn.SiLU)
