"""Channel/spatial attention blocks for the PAFPN neck and the registry that builds them.

Every block is built as ``Block(channels, **options)``, returns a tensor of its input's shape, works
for any batch size and any H x W (non-square, one-pixel sides), runs under ``torch.autocast`` and
exports to ONNX with dynamic H and W: pooling is written as means/maxima over tensor axes, never as
pooling modules whose output size is fixed when the graph is traced.

Adding a block is one class plus one ``@register_attention("name")`` line.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from yolox.utils.errors import UserError

__all__ = [
    "CBAM",
    "CoordinateAttention",
    "ECA",
    "ResidualScaledAttention",
    "SqueezeExcitation",
    "available_attentions",
    "build_attention",
    "register_attention",
]

INIT_MODES = ("paper", "identity")

_ATTENTION_REGISTRY: dict[str, type[nn.Module]] = {}

BlockType = TypeVar("BlockType", bound=type[nn.Module])


def register_attention(name: str) -> Callable[[BlockType], BlockType]:
    """Class decorator that makes an attention block buildable by ``build_attention(name, ...)``."""
    if not isinstance(name, str) or not name or name != name.lower() or not name.isidentifier():
        raise UserError(
            f"attention name {name!r} is invalid: use a lower-case identifier such as 'cam'"
        )

    def add_to_registry(block_class: BlockType) -> BlockType:
        if name in _ATTENTION_REGISTRY:
            raise UserError(
                f"attention {name!r} is already registered by "
                f"{_ATTENTION_REGISTRY[name].__qualname__}; pick another name"
            )
        _ATTENTION_REGISTRY[name] = block_class
        return block_class

    return add_to_registry


def available_attentions() -> list[str]:
    """Return the registered attention names, sorted."""
    return sorted(_ATTENTION_REGISTRY)


def _block_options(block_class: type[nn.Module]) -> list[str]:
    """Return the keyword options a block's constructor accepts besides ``channels``."""
    parameters = inspect.signature(block_class.__init__).parameters
    return [name for name in parameters if name not in ("self", "channels")]


def build_attention(name: str, channels: int, init: str = "paper", **options) -> nn.Module:
    """Build the attention block ``name`` for ``channels`` channels.

    ``init="paper"`` returns the block exactly as its paper describes it; ``init="identity"`` wraps it
    in :class:`ResidualScaledAttention`, whose output equals its input until training moves its scale.
    ``options`` are passed to the block's constructor (for example ``reduction=8`` or ``k_size=5``).
    An unknown name, init mode or option raises ``UserError`` (a ValueError) listing the accepted ones.
    """
    known = ", ".join(repr(known_name) for known_name in available_attentions())
    if not isinstance(name, str) or name.strip().lower() not in _ATTENTION_REGISTRY:
        raise UserError(f"unknown attention {name!r}; known attentions: {known}")
    name = name.strip().lower()
    if init not in INIT_MODES:
        raise UserError(
            f"unknown attention init {init!r}; use one of: "
            + ", ".join(repr(mode) for mode in INIT_MODES)
        )
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise UserError(f"attention {name!r}: channels must be a positive int, got {channels!r}")
    block_class = _ATTENTION_REGISTRY[name]
    accepted = _block_options(block_class)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(
            f"attention {name!r} has no option {', '.join(repr(key) for key in unknown)}; "
            f"its options are: {', '.join(accepted) or '(none)'}"
        )
    block = block_class(channels, **options)
    if init == "identity":
        return ResidualScaledAttention(block)
    return block


def _positive_int(block: str, option: str, value: object) -> int:
    """Return ``value`` if it is a positive int, else raise a UserError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"attention {block!r}: option {option!r} must be a positive int, got {value!r}")
    return value


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "hswish": nn.Hardswish,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "lrelu": lambda: nn.LeakyReLU(0.1),
}


def _activation(block: str, name: str) -> nn.Module:
    """Return a fresh activation module for ``name``, or raise a UserError listing the choices."""
    if name not in _ACTIVATIONS:
        raise UserError(
            f"attention {block!r}: unknown activation {name!r}; use one of: {', '.join(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]()


class ResidualScaledAttention(nn.Module):
    """Identity-initialised attention: ``out = x + scale * (block(x) - x)`` with ``scale`` starting at 0.

    Chosen for ``attention_init="identity"`` (ReZero style, Bachlechner et al., "ReZero is All You
    Need", 2020): the wrapped block stays exactly the paper's block, and one learnable scalar decides
    how much of its output the model uses. At ``scale = 0`` the output is the input bit for bit (the
    gates are bounded, so ``0 * (block(x) - x)`` is exactly zero), so a detector with attention loaded
    from an attention-free checkpoint reproduces that checkpoint's outputs at step 0. Training then
    grows ``scale`` through its gradient ``sum(dL/dout * (block(x) - x))``; the block's own parameters
    start receiving gradient once ``scale`` is non-zero, i.e. after the first optimiser step.
    Alternatives such as a zero-initialised last layer with a ``2 * sigmoid`` gate would change the
    paper's gate range and its initialisation, which this wrapper leaves untouched.
    State-dict keys: ``scale`` and ``block.*``. ``scale`` should not be weight-decayed.
    """

    def __init__(self, block: nn.Module) -> None:
        """Wrap ``block``; ``scale`` is a learnable 0-d parameter initialised to zero."""
        super().__init__()
        self.block = block
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blend the input with the block's output by the learnt scale."""
        return x + self.scale * (self.block(x) - x)


@register_attention("cam")
class CoordinateAttention(nn.Module):
    """Coordinate Attention (Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network
    Design", CVPR 2021).

    The input is averaged along W (one descriptor per row) and along H (one per column); the two
    descriptors are concatenated along the spatial axis, mixed by a shared 1x1 conv to ``mip``
    channels, BatchNorm and a non-linearity (h-swish), split back, and turned by two 1x1 convs and
    sigmoids into a row gate ``g_h`` (C x H x 1) and a column gate ``g_w`` (C x 1 x W);
    ``out = x * g_h * g_w``.

    Paper text vs official code: the paper writes the reduced width as C / r; the official code uses
    ``mip = max(8, C // reduction)`` with reduction 32, which we follow (so C = 128 gives 8, not 4).
    The official code also gives the first 1x1 conv a bias that the following BatchNorm cancels; we
    leave it out since it cannot change the output. The non-linearity (h-swish in both) is the
    ``act`` option: "hswish", "relu", "silu" or "lrelu".
    """

    def __init__(self, channels: int, reduction: int = 32, min_mip: int = 8, act: str = "hswish") -> None:
        """Build the block for ``channels`` channels with ``mip = max(min_mip, channels // reduction)``."""
        super().__init__()
        reduction = _positive_int("cam", "reduction", reduction)
        min_mip = _positive_int("cam", "min_mip", min_mip)
        self.mip = max(min_mip, channels // reduction)
        self.conv_reduce = nn.Conv2d(channels, self.mip, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(self.mip)
        self.act = _activation("cam", act)
        self.conv_h = nn.Conv2d(self.mip, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(self.mip, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` by a per-row and a per-column attention map."""
        height = x.shape[2]
        row_descriptor = x.mean(dim=3, keepdim=True)  # N x C x H x 1
        column_descriptor = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N x C x W x 1
        mixed = torch.cat([row_descriptor, column_descriptor], dim=2)
        mixed = self.act(self.bn(self.conv_reduce(mixed)))
        row_part = mixed[:, :, :height]
        column_part = mixed[:, :, height:].transpose(2, 3)
        row_gate = torch.sigmoid(self.conv_h(row_part))
        column_gate = torch.sigmoid(self.conv_w(column_part))
        return x * row_gate * column_gate


@register_attention("se")
class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation (Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018).

    Global mean per channel, C -> hidden -> C with ReLU between and a sigmoid gate at the end, both
    layers with biases; ``hidden = max(min_hidden, C // reduction)``, reduction 16.

    Paper text vs official code: both use fully connected layers with reduction r = 16 and no lower
    bound on the hidden width; we keep r = 16 and add the floor of 8 hidden units so that narrow
    necks (C = 64 would give 4) keep a usable bottleneck. The fully connected layers are written as
    1x1 convolutions on the N x C x 1 x 1 descriptor, which is the same computation and exports to
    ONNX without reshapes.
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        """Build the block for ``channels`` channels with ``max(min_hidden, channels // reduction)`` hidden units."""
        super().__init__()
        reduction = _positive_int("se", "reduction", reduction)
        min_hidden = _positive_int("se", "min_hidden", min_hidden)
        self.hidden = max(min_hidden, channels // reduction)
        self.fc_reduce = nn.Conv2d(channels, self.hidden, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc_expand = nn.Conv2d(self.hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of ``x`` by its excitation gate."""
        descriptor = x.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(self.fc_expand(self.relu(self.fc_reduce(descriptor))))
        return x * gate


def eca_kernel_size(channels: int) -> int:
    """ECA's adaptive kernel size: t = int((log2(C) + 1) / 2), made odd (t + 1 if even), at least 3."""
    t = int((math.log2(channels) + 1) / 2)  # the paper's gamma = 2, b = 1
    k = t if t % 2 == 1 else t + 1
    return max(3, k)


@register_attention("eca")
class ECA(nn.Module):
    """Efficient Channel Attention (Wang et al., "ECA-Net: Efficient Channel Attention for Deep
    Convolutional Neural Networks", CVPR 2020).

    Global mean per channel, a 1-D convolution across neighbouring channels (kernel ``k``, no bias)
    and a sigmoid gate.

    Paper text vs official code: the paper chooses ``k`` from the channel count,
    ``k = |log2(C) / gamma + b / gamma|_odd`` with gamma = 2, b = 1; the official module takes a fixed
    ``k_size`` (3 by default) that the network passes per stage. We follow the paper's adaptive rule,
    written as in the official helper (t = int((log2(C) + 1) / 2), t + 1 when even) and at least 3,
    which gives k = 3 for C = 64 and k = 5 for C = 128 ... 1024. An explicit odd ``k_size`` overrides it.
    """

    def __init__(self, channels: int, k_size: int | None = None) -> None:
        """Build the block; ``k_size`` None picks the paper's adaptive kernel size for ``channels``."""
        super().__init__()
        if k_size is None:
            k_size = eca_kernel_size(channels)
        elif isinstance(k_size, bool) or not isinstance(k_size, int) or k_size < 1 or k_size % 2 == 0:
            raise UserError(f"attention 'eca': option 'k_size' must be a positive odd int, got {k_size!r}")
        self.k_size = k_size
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=k_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of ``x`` by a gate computed from its neighbouring channels' means."""
        descriptor = x.mean(dim=(2, 3)).unsqueeze(1)  # N x 1 x C: channels as a 1-D sequence
        gate = torch.sigmoid(self.conv(descriptor)).transpose(1, 2).unsqueeze(-1)  # N x C x 1 x 1
        return x * gate


@register_attention("cbam")
class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo, Park, Lee, Kweon, "CBAM: Convolutional Block
    Attention Module", ECCV 2018).

    Channel gate ``sigmoid(MLP(mean_hw(x)) + MLP(max_hw(x)))`` with one shared MLP
    (C -> hidden -> C, ReLU, ``hidden = max(min_hidden, C // reduction)``, reduction 16), applied
    first; then spatial gate ``sigmoid(conv7x7([mean_c(x'), max_c(x')]))`` on the channel-gated x'.

    Paper text vs official code: the paper's spatial branch is a single 7x7 convolution followed by
    the sigmoid, over [average-pooled; max-pooled] maps in that order; the official code adds a
    BatchNorm after that convolution and stacks [max; mean]. We follow the paper (no BatchNorm,
    [mean; max]) and give the 7x7 convolution a bias, which the official code drops only because its
    BatchNorm follows. The MLP keeps the official code's biases (the paper's equations omit them).
    The floor of 8 hidden units is ours, as for SE.
    """

    def __init__(
        self, channels: int, reduction: int = 16, min_hidden: int = 8, spatial_kernel: int = 7
    ) -> None:
        """Build the block for ``channels`` channels; ``spatial_kernel`` is the spatial gate's (odd) kernel."""
        super().__init__()
        reduction = _positive_int("cbam", "reduction", reduction)
        min_hidden = _positive_int("cbam", "min_hidden", min_hidden)
        spatial_kernel = _positive_int("cbam", "spatial_kernel", spatial_kernel)
        if spatial_kernel % 2 == 0:
            raise UserError(f"attention 'cbam': option 'spatial_kernel' must be odd, got {spatial_kernel}")
        self.hidden = max(min_hidden, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, self.hidden, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(self.hidden, channels, kernel_size=1),
        )
        self.spatial_conv = nn.Conv2d(2, 1, kernel_size=spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` by channel attention, then by spatial attention."""
        channel_logits = self.mlp(x.mean(dim=(2, 3), keepdim=True)) + self.mlp(x.amax(dim=(2, 3), keepdim=True))
        x = x * torch.sigmoid(channel_logits)
        spatial_maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial_conv(spatial_maps))
