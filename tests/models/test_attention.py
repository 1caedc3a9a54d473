"""Attention blocks: shapes, gradients, identity init, autocast, ONNX export, registry errors, formulas."""

import io
import re
import warnings

import pytest
import torch
from torch import nn

from yolox.models import attention
from yolox.models.attention import (
    ResidualScaledAttention,
    available_attentions,
    build_attention,
    register_attention,
)
from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import YOLOPAFPN
from yolox.models.yolox import YOLOX
from yolox.utils.errors import UserError

BLOCKS = available_attentions()
CHANNELS = 16
SIZES = [(1, 7), (7, 1), (5, 9), (20, 20)]


def test_registry_lists_the_blocks():
    # Exp files may register blocks of their own (the shapes exp's control); the library's are these.
    library_blocks = [name for name in available_attentions()
                      if attention._ATTENTION_REGISTRY[name].__module__ == "yolox.models.attention"]
    assert library_blocks == ["cam", "cbam", "cbam_res", "eca", "ema", "se", "simam", "soca"]
    # The probe's channel blocks come from the classes themselves, not from a list of names.
    assert [name for name in library_blocks if attention.has_channel_gate(name)] == ["eca", "se", "soca"]


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_block_keeps_the_input_shape(name, batch, size):
    block = build_attention(name, CHANNELS)
    x = torch.randn(batch, CHANNELS, *size)
    assert block(x).shape == x.shape
    block.eval()
    with torch.no_grad():
        assert block(x).shape == x.shape


@pytest.mark.parametrize("name", BLOCKS)
def test_gradients_reach_every_parameter_in_paper_mode(name):
    torch.manual_seed(0)
    block = build_attention(name, CHANNELS)
    x = torch.randn(2, CHANNELS, 5, 9, requires_grad=True)
    (block(x) * torch.randn(2, CHANNELS, 5, 9)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for param_name, parameter in block.named_parameters():
        assert parameter.grad is not None, f"{name}: no gradient for {param_name}"
        assert parameter.grad.abs().sum() > 0, f"{name}: zero gradient for {param_name}"


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_identity_init_returns_the_input_exactly(name, training):
    block = build_attention(name, CHANNELS, init="identity").train(training)
    x = torch.randn(3, CHANNELS, 5, 9) * 10
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("name", BLOCKS)
def test_identity_wrapper_keeps_the_paper_block_and_learns_its_scale(name):
    torch.manual_seed(0)
    wrapped = build_attention(name, CHANNELS, init="identity")
    assert isinstance(wrapped, ResidualScaledAttention)
    assert isinstance(wrapped.block, type(build_attention(name, CHANNELS)))
    block_keys = {f"block.{key}" for key in build_attention(name, CHANNELS).state_dict()}
    assert set(wrapped.state_dict()) == {"scale"} | block_keys
    x = torch.randn(2, CHANNELS, 5, 9)
    (wrapped(x) * torch.randn_like(x)).sum().backward()
    assert wrapped.scale.grad is not None and wrapped.scale.grad.abs() > 0
    # Once the scale moves, the output is the blend of input and block output.
    with torch.no_grad():
        wrapped.scale.fill_(0.25)
        wrapped.eval()
        expected = 0.75 * x + 0.25 * wrapped.block(x)
        assert torch.allclose(wrapped(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("init", ["paper", "identity"])
def test_block_runs_under_bfloat16_autocast(name, init):
    torch.manual_seed(0)
    block = build_attention(name, CHANNELS, init=init).eval()
    if init == "identity":
        with torch.no_grad():
            block.scale.fill_(0.5)  # exercise the wrapped block, not just the identity path
    x = torch.randn(2, CHANNELS, 5, 9)
    with torch.no_grad():
        reference = block(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = block(x)
    assert output.shape == x.shape
    assert output.dtype == x.dtype
    assert torch.isfinite(output).all()
    assert torch.allclose(output.float(), reference, atol=0.1, rtol=0.05)


def _export_to_onnx(block: nn.Module, channels: int) -> bytes:
    """Export ``block`` with dynamic batch, H and W and return the ONNX bytes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            block,
            (torch.randn(1, channels, 8, 8),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch", 2: "height", 3: "width"}},
            opset_version=17,
        )
    return buffer.getvalue()


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("init", ["paper", "identity"])
def test_onnx_export_with_dynamic_height_and_width(name, init, randomize_batchnorm):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    torch.manual_seed(0)
    block = build_attention(name, CHANNELS, init=init).eval()
    randomize_batchnorm(block)
    if init == "identity":
        with torch.no_grad():
            block.scale.fill_(0.7)
    session = ort.InferenceSession(_export_to_onnx(block, CHANNELS), providers=["CPUExecutionProvider"])
    for shape in [(1, CHANNELS, 5, 9), (2, CHANNELS, 12, 7), (1, CHANNELS, 1, 3)]:
        x = torch.randn(*shape)
        (output,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            expected = block(x)
        assert output.shape == tuple(shape)
        assert torch.allclose(torch.from_numpy(output), expected, atol=1e-5), f"{name} at {shape}"


def _tiny_yolox(attention_name=None, init="paper", levels=("dark3", "dark4", "dark5")) -> YOLOX:
    """A yolox-nano-sized model with 2 classes, optionally with attention."""
    torch.manual_seed(0)
    backbone = YOLOPAFPN(
        depth=0.33, width=0.25, attention=attention_name, attention_levels=levels, attention_init=init
    )
    return YOLOX(backbone, YOLOXHead(2, width=0.25))


@pytest.mark.parametrize("name", BLOCKS)
def test_identity_attention_model_reproduces_the_attention_free_model(name, randomize_batchnorm):
    plain = _tiny_yolox()
    randomize_batchnorm(plain)
    plain.eval()
    with_attention = _tiny_yolox(name, init="identity").eval()
    attention_keys = {key for key in with_attention.state_dict() if key.startswith("backbone.attn.")}
    assert {key.split(".")[2] for key in attention_keys} == {"dark3", "dark4", "dark5"}

    result = with_attention.load_state_dict(plain.state_dict(), strict=False)
    # BatchNorm fills an absent num_batches_tracked itself, so torch does not report it as missing.
    assert set(result.missing_keys) == {key for key in attention_keys if not key.endswith("num_batches_tracked")}
    assert result.unexpected_keys == []

    images = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        assert torch.equal(with_attention(images), plain(images))


def test_attention_only_on_the_chosen_levels():
    model = _tiny_yolox("se", levels=("dark4",))
    result = model.load_state_dict(_tiny_yolox().state_dict(), strict=False)
    assert result.missing_keys and all(key.startswith("backbone.attn.dark4.") for key in result.missing_keys)
    assert result.unexpected_keys == []


def test_attention_free_model_has_no_attention_keys():
    assert not any(".attn." in key for key in _tiny_yolox().state_dict())


def test_unknown_name_lists_the_known_attentions():
    # Every registered name is listed, the library's own and any an exp file loaded earlier registered.
    listed = ", ".join(f"'{name}'" for name in available_attentions())
    with pytest.raises(UserError, match=re.escape(listed)) as info:
        build_attention("nonlocal", 64)
    assert "'cam', 'cbam', 'cbam_res', 'eca', 'ema'" in str(info.value)
    assert "nonlocal" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_name_is_case_insensitive():
    assert isinstance(build_attention("SE", 64), attention.SqueezeExcitation)


def test_bad_init_lists_the_modes():
    with pytest.raises(ValueError, match="'paper', 'identity'"):
        build_attention("se", 64, init="zero")


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("se", {"ratio": 4}, "no option 'ratio'.*reduction, min_hidden"),
        ("eca", {"k_size": 4}, "'k_size' must be a positive odd int, got 4"),
        ("eca", {"k_size": 0}, "'k_size' must be a positive odd int, got 0"),
        ("cam", {"act": "gelu"}, "unknown activation 'gelu'.*hswish"),
        ("cam", {"reduction": 0}, "'reduction' must be a positive int, got 0"),
        ("cbam", {"spatial_kernel": 6}, "'spatial_kernel' must be odd, got 6"),
    ],
)
def test_bad_option_is_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_attention(name, 64, **options)


@pytest.mark.parametrize("channels", [0, -8, 8.0, True])
def test_bad_channels(channels):
    with pytest.raises(ValueError, match="channels must be a positive int"):
        build_attention("se", channels)


def test_registering_a_block_is_one_decorator(monkeypatch):
    monkeypatch.setattr(attention, "_ATTENTION_REGISTRY", dict(attention._ATTENTION_REGISTRY))

    @register_attention("halve")
    class Halve(nn.Module):
        def __init__(self, channels: int, factor: float = 0.5) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.factor

    assert "halve" in available_attentions()
    block = build_attention("halve", 8, factor=0.25)
    assert torch.equal(block(torch.ones(1, 8, 2, 2)), torch.full((1, 8, 2, 2), 0.25))
    assert register_attention("halve")(Halve) is Halve  # the same class again: a no-op

    class Other(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ValueError, match="already registered by .*Halve"):
        register_attention("halve")(Other)
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_attention("Bad Name")


@pytest.mark.parametrize("channels, kernel", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5)])
def test_eca_kernel_size_follows_the_paper(channels, kernel):
    block = build_attention("eca", channels)
    assert block.k_size == kernel
    assert block.conv.weight.shape == (1, 1, kernel)
    assert block.conv.bias is None


def test_eca_explicit_kernel_size():
    assert build_attention("eca", 64, k_size=7).conv.weight.shape == (1, 1, 7)


def test_eca_gate_is_a_conv_across_neighbouring_channels():
    block = build_attention("eca", 8, k_size=3)
    with torch.no_grad():
        block.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))
    x = torch.randn(1, 8, 3, 4)
    means = x.mean(dim=(2, 3))[0]
    padded = torch.cat([torch.zeros(1), means, torch.zeros(1)])
    logits = torch.stack([padded[i] + 2 * padded[i + 1] + 3 * padded[i + 2] for i in range(8)])
    with torch.no_grad():
        assert torch.allclose(block(x), x * torch.sigmoid(logits).view(1, 8, 1, 1), atol=1e-6)


@pytest.mark.parametrize("channels, mip", [(128, 8), (256, 8), (512, 16), (1024, 32)])
def test_cam_mip_width(channels, mip):
    block = build_attention("cam", channels)
    assert block.mip == mip
    assert block.conv_reduce.weight.shape == (mip, channels, 1, 1)
    assert block.conv_h.weight.shape == block.conv_w.weight.shape == (channels, mip, 1, 1)
    # Every BatchNorm the block owns is used: exactly one, on the reduced descriptor.
    assert [type(module) for module in block.modules() if isinstance(module, nn.BatchNorm2d)] == [nn.BatchNorm2d]
    assert isinstance(block.act, nn.Hardswish)


def test_cam_gates_rows_and_columns(randomize_batchnorm):
    block = build_attention("cam", 8, act="relu").eval()
    randomize_batchnorm(block)
    x = torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        descriptor = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], dim=2)
        mixed = torch.relu(block.bn(block.conv_reduce(descriptor)))
        row_gate = torch.sigmoid(block.conv_h(mixed[:, :, :3]))
        column_gate = torch.sigmoid(block.conv_w(mixed[:, :, 3:].transpose(2, 3)))
        assert row_gate.shape == (2, 8, 3, 1) and column_gate.shape == (2, 8, 1, 5)
        assert torch.allclose(block(x), x * row_gate * column_gate, atol=1e-6)


@pytest.mark.parametrize("channels, hidden", [(64, 8), (32, 8), (512, 32)])
def test_se_hidden_width(channels, hidden):
    block = build_attention("se", channels)
    assert block.fc_reduce.weight.shape == (hidden, channels, 1, 1)
    assert block.fc_reduce.bias is not None and block.fc_expand.bias is not None


def test_se_gate_is_an_mlp_of_the_channel_means():
    block = build_attention("se", 32)
    x = torch.randn(2, 32, 4, 6)
    means = x.mean(dim=(2, 3))
    hidden = torch.relu(means @ block.fc_reduce.weight.flatten(1).T + block.fc_reduce.bias)
    gate = torch.sigmoid(hidden @ block.fc_expand.weight.flatten(1).T + block.fc_expand.bias)
    with torch.no_grad():
        assert torch.allclose(block(x), x * gate[:, :, None, None], atol=1e-6)


def test_cbam_channel_then_spatial_gate():
    block = build_attention("cbam", 64)
    assert block.mlp[0].weight.shape == (8, 64, 1, 1)
    assert block.spatial_conv.weight.shape == (1, 2, 7, 7)
    x = torch.randn(2, 64, 5, 6)
    with torch.no_grad():
        channel_gate = torch.sigmoid(block.mlp(x.mean((2, 3), keepdim=True)) + block.mlp(x.amax((2, 3), keepdim=True)))
        gated = x * channel_gate
        maps = torch.cat([gated.mean(1, keepdim=True), gated.amax(1, keepdim=True)], dim=1)
        expected = gated * torch.sigmoid(block.spatial_conv(maps))
        assert torch.allclose(block(x), expected, atol=1e-6)
