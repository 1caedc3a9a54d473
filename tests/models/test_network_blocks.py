"""Conv units and CSP blocks: the memory-saving BN + SiLU training path and the cascaded SPP pools
give the same numbers as their straightforward module compositions."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolox.models import build_attention
from yolox.models.network_blocks import (
    ACTIVATIONS,
    BaseConv,
    SPPBottleneck,
    batch_norm_silu,
    get_activation,
    set_bn_memory_saving,
)
from yolox.utils.errors import UserError


def _reference_forward(unit: BaseConv, x: torch.Tensor) -> torch.Tensor:
    """conv -> BatchNorm2d module -> out-of-place SiLU, the textbook composition."""
    return F.silu(unit.bn(unit.conv(x)))


@pytest.mark.parametrize("momentum", [0.03, None])
def test_train_mode_bn_silu_matches_the_module_composition(momentum):
    torch.manual_seed(0)
    unit = BaseConv(6, 10, 3, 1)
    unit.bn_memory_saving = True
    unit.bn.momentum = momentum
    with torch.no_grad():
        unit.bn.weight.uniform_(0.5, 1.5)
        unit.bn.bias.uniform_(-0.3, 0.3)
    reference = copy.deepcopy(unit)
    x = torch.randn(3, 6, 9, 7, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()

    for _ in range(2):  # twice: the running statistics and the cumulative momentum must keep agreeing
        out, out_ref = unit(x), _reference_forward(reference, x_ref)
        assert out.grad_fn is not None and "BatchNormSiLU" in type(out.grad_fn).__name__
        torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
        grad = torch.randn_like(out)
        out.backward(grad)
        out_ref.backward(grad)

    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for (name, param), ref_param in zip(unit.named_parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=1e-5, atol=1e-5, msg=name)
    for name, buffer in unit.bn.named_buffers():
        torch.testing.assert_close(buffer, dict(reference.bn.named_buffers())[name], rtol=0, atol=0, msg=name)


def test_train_mode_bn_silu_respects_frozen_bn_parameters():
    unit = BaseConv(4, 4, 1, 1)
    unit.bn_memory_saving = True
    unit.bn.weight.requires_grad_(False)
    unit.bn.bias.requires_grad_(False)
    unit(torch.randn(2, 4, 5, 5)).sum().backward()
    assert unit.bn.weight.grad is None and unit.bn.bias.grad is None
    assert unit.conv.weight.grad is not None


@pytest.mark.parametrize(
    "setting",
    ["off", "eval", "no_grad", "relu", "sync_bn_like"],
)
def test_other_settings_keep_the_module_path(setting):
    unit = BaseConv(4, 4, 1, 1, act="relu" if setting == "relu" else "silu")
    unit.bn_memory_saving = setting != "off"
    if setting == "eval":
        unit.eval()
    if setting == "sync_bn_like":
        unit.bn = type("OtherNorm", (nn.BatchNorm2d,), {})(4)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with torch.set_grad_enabled(setting != "no_grad"):
        out = unit(x)
    assert out.grad_fn is None or "BatchNormSiLU" not in type(out.grad_fn).__name__


def test_memory_saving_is_off_by_default_and_keeps_one_feature_map_less_per_unit_when_on():
    from yolox.core.memory import saved_activation_bytes

    model = nn.Sequential(BaseConv(3, 8, 3, 1), BaseConv(8, 8, 3, 1), BaseConv(8, 8, 1, 1))
    x = torch.randn(2, 3, 16, 16)
    assert not any(unit.bn_memory_saving for unit in model)  # the default

    class Wrapper(nn.Module):  # saved_activation_bytes calls model(images, targets)
        def __init__(self) -> None:
            super().__init__()
            self.body = model

        def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return self.body(images)

    off = saved_activation_bytes(Wrapper(), x, torch.zeros(0))
    assert set_bn_memory_saving(model, True) == 3 and all(unit.bn_memory_saving for unit in model)
    on = saved_activation_bytes(Wrapper(), x, torch.zeros(0))
    feature_map = 2 * 8 * 16 * 16 * 4  # one [2, 8, 16, 16] float32 map per unit
    # Each unit also keeps a few per-channel vectors less (BN's running statistics): 8 channels, 4 bytes.
    assert 3 * feature_map <= off - on <= 3 * (feature_map + 16 * 8 * 4)


def test_batch_norm_silu_counts_batches_like_batchnorm():
    bn = nn.BatchNorm2d(3)
    batch_norm_silu(torch.randn(2, 3, 4, 4, requires_grad=True), bn)
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize("kernel_sizes", [(5, 9, 13), (3, 5), (1, 7)])
@pytest.mark.parametrize("height_width", [(1, 1), (4, 13), (20, 20)])
def test_cascaded_spp_pools_equal_direct_pools(kernel_sizes, height_width):
    torch.manual_seed(0)
    spp = SPPBottleneck(8, 6, kernel_sizes=kernel_sizes).eval()
    x = torch.randn(2, 8, *height_width)
    with torch.no_grad():
        hidden = spp.conv1(x)
        direct = [F.max_pool2d(hidden, k, stride=1, padding=k // 2) for k in kernel_sizes]
        expected = spp.conv2(torch.cat([hidden] + direct, dim=1))
        assert torch.equal(spp(x), expected)


@pytest.mark.parametrize("kernel_sizes", [(9, 5), (4, 8), (5, 5)])
def test_spp_rejects_unordered_or_even_kernels(kernel_sizes):
    with pytest.raises(ValueError, match="odd and increasing"):
        SPPBottleneck(8, 8, kernel_sizes=kernel_sizes)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_name_builds_a_conv_unit_and_an_attention_block(name):
    x = torch.randn(1, 8, 4, 4)
    assert BaseConv(8, 8, ksize=1, stride=1, act=name)(x).shape == x.shape
    assert build_attention("cam", 8, act=name)(x).shape == x.shape


def test_unknown_activation_is_one_error_listing_every_name():
    listed = ", ".join(sorted(ACTIVATIONS))
    with pytest.raises(UserError, match=f"unknown activation 'gelu': use one of {listed}$"):
        get_activation("gelu")
    with pytest.raises(UserError, match=f"^attention 'cam': unknown activation 'gelu': use one of {listed}$"):
        build_attention("cam", 8, act="gelu")
