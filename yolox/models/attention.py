"""Channel/spatial attention blocks for the PAFPN neck and the registry that builds them.

Every block is built as ``Block(channels, **options)``, returns a tensor of its input's shape, works
for any batch size and any H x W (non-square, one-pixel sides), runs under ``torch.autocast`` and
exports to ONNX with dynamic H and W: pooling is written as means/maxima over tensor axes, never as
pooling modules whose output size is fixed when the graph is traced.

Adding a block is one class plus one ``@register_attention("name")`` line.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.onnx.operators
from loguru import logger
from torch import nn

from yolox.models.network_blocks import get_activation
from yolox.utils.errors import UserError

__all__ = [
    "ATTENTION_INIT_MODES",
    "ATTENTION_POSITIONS",
    "CBAM",
    "ECA",
    "EMA",
    "SOCA",
    "CoordinateAttention",
    "ResidualCBAM",
    "ResidualScaledAttention",
    "SimAM",
    "SqueezeExcitation",
    "attention_block_types",
    "attention_rng",
    "available_attentions",
    "build_attention",
    "newton_schulz_sqrt",
    "has_channel_gate",
    "normalize_attention_name",
    "register_attention",
    "registered_attention_name",
]

ATTENTION_INIT_MODES = ("paper", "identity")
# Where the neck applies its blocks: on the backbone outputs before fusion, on the PAN outputs before the
# head, or both.
ATTENTION_POSITIONS = ("backbone", "neck", "both")

_ATTENTION_REGISTRY: dict[str, type[nn.Module]] = {}

BlockType = TypeVar("BlockType", bound=type[nn.Module])


def normalize_attention_name(value: object) -> object:
    """The one spelling rule for attention names, init modes, positions and levels: strip, lower-case.

    Non-strings (``None``, numbers) come back unchanged so that the caller's check can name them.
    """
    return value.strip().lower() if isinstance(value, str) else value


def register_attention(name: str) -> Callable[[BlockType], BlockType]:
    """Class decorator that makes an attention block buildable by ``build_attention(name, ...)``.

    Registering the same class again (same module and qualified name, as when an exp file that defines
    a block is executed twice) is a no-op; another class under a taken name is an error.
    """
    if not isinstance(name, str) or not name or name != normalize_attention_name(name) or not name.isidentifier():
        raise UserError(
            f"attention name {name!r} is invalid: use a lower-case identifier such as 'cam'"
        )

    def add_to_registry(block_class: BlockType) -> BlockType:
        registered = _ATTENTION_REGISTRY.get(name)
        if registered is not None:
            if (registered.__module__, registered.__qualname__) == (block_class.__module__, block_class.__qualname__):
                return block_class
            source = getattr(sys.modules.get(registered.__module__), "__file__", None)
            raise UserError(
                f"attention {name!r} is already registered by {registered.__module__}."
                f"{registered.__qualname__}{f' ({source})' if source else ''}; pick another name"
            )
        _ATTENTION_REGISTRY[name] = block_class
        return block_class

    return add_to_registry


def available_attentions() -> list[str]:
    """Return the registered attention names, sorted."""
    return sorted(_ATTENTION_REGISTRY)


def attention_block_types() -> tuple[type[nn.Module], ...]:
    """The classes of every registered block, and the identity-init wrapper around any of them."""
    return (ResidualScaledAttention, *_ATTENTION_REGISTRY.values())


def registered_attention_name(block: nn.Module) -> str | None:
    """The registry name of ``block``'s own class (looking through the identity-init wrapper), else None."""
    inner = block.block if isinstance(block, ResidualScaledAttention) else block
    return next((name for name, cls in _ATTENTION_REGISTRY.items() if type(inner) is cls), None)


def has_channel_gate(name: str) -> bool:
    """Whether the registered block ``name`` gates with one value per channel (its class sets ``channel_gate``)."""
    return bool(getattr(_ATTENTION_REGISTRY[normalize_attention_name(name)], "channel_gate", False))


def _block_options(block_class: type[nn.Module]) -> list[str]:
    """Return the keyword options a block's constructor accepts besides ``channels``."""
    parameters = inspect.signature(block_class.__init__).parameters
    return [name for name in parameters if name not in ("self", "channels")]


def build_attention(name: str, channels: int, init: str = "paper", **options) -> nn.Module:
    """Build the attention block ``name`` for ``channels`` channels.

    ``init="paper"`` returns the block exactly as its paper describes it; ``init="identity"`` wraps it
    in :class:`ResidualScaledAttention`, whose output equals its input until training moves its scale.
    ``options`` are passed to the block's constructor (for example ``reduction=8`` or ``k_size=5``).
    Names and init modes follow :func:`normalize_attention_name` (any case). An unknown name, init mode
    or option raises ``UserError`` (a ValueError) listing the accepted ones.
    """
    known = ", ".join(repr(known_name) for known_name in available_attentions())
    normalized = normalize_attention_name(name)
    if normalized not in _ATTENTION_REGISTRY:
        raise UserError(f"unknown attention {name!r}; known attentions: {known}")
    name = normalized
    init_mode = normalize_attention_name(init)
    if init_mode not in ATTENTION_INIT_MODES:
        raise UserError(
            f"unknown attention init {init!r}; use one of: "
            + ", ".join(repr(mode) for mode in ATTENTION_INIT_MODES)
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
    if init_mode == "identity":
        return ResidualScaledAttention(block)
    return block


@contextmanager
def attention_rng() -> Iterator[None]:
    """Build attention blocks inside this block so they leave the global (CPU) random stream untouched.

    The stream is forked (``torch.random.fork_rng``) and restored afterwards, so, for one seed, every
    module built after the blocks (the rest of the neck, the head) gets the same weights whatever the
    attention: a same-seed comparison of two blocks is a paired one. Inside, the stream is reseeded from
    one draw of it, so the blocks do not reuse the very numbers that the next module then draws.
    Build all of a model's blocks in one such block: two blocks built in separate forks would get the
    same numbers. Models are built on the CPU; CUDA streams are neither used nor forked.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(torch.randint(0, 2**62, (), device="cpu")))
        yield


def _positive_int(block: str, option: str, value: object) -> int:
    """Return ``value`` if it is a positive int, else raise a UserError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"attention {block!r}: option {option!r} must be a positive int, got {value!r}")
    return value


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

    Args:
        block: the attention block to wrap; it must return a tensor of its input's shape.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
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
    ``act`` option, any name of ``network_blocks.ACTIVATIONS``.

    Args:
        channels: C, the channels of the input and the output.
        reduction: divides C to give the mixing width ``mip = max(min_mip, C // reduction)``. Default: 32.
        min_mip: the smallest mixing width. Default: 8.
        act: the non-linearity after the BatchNorm, a name of ``network_blocks.ACTIVATIONS``. Default: "hswish".

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    def __init__(self, channels: int, reduction: int = 32, min_mip: int = 8, act: str = "hswish") -> None:
        """Build the block for ``channels`` channels with ``mip = max(min_mip, channels // reduction)``."""
        super().__init__()
        reduction = _positive_int("cam", "reduction", reduction)
        min_mip = _positive_int("cam", "min_mip", min_mip)
        self.mip = max(min_mip, channels // reduction)
        self.conv_reduce = nn.Conv2d(channels, self.mip, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(self.mip)
        try:
            self.act = get_activation(act, inplace=False)
        except UserError as err:
            raise UserError(f"attention 'cam': {err}") from None
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

    Args:
        channels: C, the channels of the input and the output.
        reduction: divides C to give the hidden width ``max(min_hidden, C // reduction)``. Default: 16.
        min_hidden: the smallest hidden width. Default: 8.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    channel_gate = True  # one gate value per channel (what the attention probe reports)

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
    ``k_size`` (3 by default) that the network passes per stage and has no helper computing it. We follow
    the paper's adaptive rule, written the way timm's ECA computes it (t = int((log2(C) + 1) / 2),
    t + 1 when even) and at least 3,
    which gives k = 3 for C = 64 and k = 5 for C = 128 ... 1024. An explicit odd ``k_size`` overrides it.

    Args:
        channels: C, the channels of the input and the output; picks the kernel size when ``k_size`` is None.
        k_size: the odd kernel size of the 1-D convolution across channels, or None for the paper's
            adaptive size. Default: None.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    channel_gate = True  # one gate value per channel (what the attention probe reports)

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

    Args:
        channels: C, the channels of the input and the output.
        reduction: divides C to give the MLP's hidden width ``max(min_hidden, C // reduction)``. Default: 16.
        min_hidden: the smallest hidden width. Default: 8.
        spatial_kernel: the odd kernel size of the spatial gate's convolution. Default: 7.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
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


@register_attention("cbam_res")
class ResidualCBAM(CBAM):
    """CBAM with a residual connection, ``out = x + cbam(x)``, as several YOLO write-ups add it.

    Same parameters, options and state-dict keys as :class:`CBAM`. Its output is not the input at
    initialisation: both CBAM gates start near 0.5, so ``cbam(x)`` is about ``x / 4`` and the block
    starts at about 1.25x its input, which shifts the features a pretrained neck expects. For an exact
    identity at step 0 use ``cbam`` with ``attention_init identity`` instead (``x + s * (cbam(x) - x)``,
    ``s = 0``). Neither CBAM paper nor its code has this residual variant; it follows the write-ups.

    Args:
        channels, reduction, min_hidden, spatial_kernel: as for :class:`CBAM`.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the CBAM-gated features to the input."""
        return x + super().forward(x)


def _spatial_shape(x: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` of an N x C x H x W tensor as an int64 tensor, so that ONNX export keeps it dynamic."""
    return torch.onnx.operators.shape_as_tensor(x)[2:]


def _adaptive_mean_matrix(
    length: torch.Tensor, max_bins: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Return the ``min(length, max_bins) x length`` matrix that averages a length-long axis into bins.

    The bins are those of ``adaptive_avg_pool``: bin i covers ``[floor(i L / B), ceil((i + 1) L / B))``.
    With ``length <= max_bins`` the matrix is the identity. Built from tensors so that it stays dynamic
    in an ONNX graph (adaptive pooling to a fixed size does not export for dynamic inputs).
    """
    bins = torch.clamp(length, max=max_bins)
    bin_index = torch.arange(bins, device=device).unsqueeze(1)
    position = torch.arange(length, device=device).unsqueeze(0)
    start = torch.div(bin_index * length, bins, rounding_mode="floor")
    end = torch.div((bin_index + 1) * length + bins - 1, bins, rounding_mode="floor")
    inside = ((position >= start) & (position < end)).to(dtype)
    return inside / inside.sum(dim=1, keepdim=True)


def newton_schulz_sqrt(matrix: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """Square root of symmetric positive (semi-)definite matrices ``[..., n, n]`` by coupled Newton-Schulz.

    ``A`` is divided by its trace, iterated from ``Y0 = A, Z0 = I`` with ``T = (3I - Z Y) / 2``,
    ``Y <- Y T``, ``Z <- T Z`` (``Y`` tends to ``sqrt(A)``, ``Z`` to its inverse), and the result is
    multiplied by ``sqrt(trace)``. The caller keeps the trace positive (add ``eps * I``). Convergence
    needs the trace-normalised eigenvalues in (0, 1]; with n channels of similar variance they are
    about 1 / n, where the iteration starts slowest, so a few iterations give an approximation whose
    error grows with n (see :class:`SOCA` for measured figures), which is what SAN uses (it is
    differentiable and cheap, and shrinks the large eigenvalues).
    """
    size = matrix.shape[-1]
    identity = torch.eye(size, dtype=matrix.dtype, device=matrix.device)
    trace = matrix.diagonal(dim1=-2, dim2=-1).sum(dim=-1)[..., None, None]
    normalized = matrix / trace
    # First step with Z0 = I, written out to save two products: T = (3I - A) / 2, Y1 = A T, Z1 = T.
    step = 0.5 * (3.0 * identity - normalized)
    root = normalized @ step
    inverse_root = step
    for index in range(1, iterations):
        step = 0.5 * (3.0 * identity - inverse_root @ root)
        root = root @ step
        if index + 1 < iterations:  # the last Z is never used
            inverse_root = step @ inverse_root
    return root * torch.sqrt(trace)


@register_attention("soca")
class SOCA(nn.Module):
    """Second-order channel attention (Dai, Cai, Zhang, Xia, Zhang, "Second-order Attention Network for
    Single Image Super-Resolution", CVPR 2019, "SAN").

    The C x M features (M = H x W) give the centred covariance ``S = Xc Xc^T / M`` (``Xc = X - mean``,
    a C x C product, never an M x M one) plus ``eps * I``; its square root by Newton-Schulz
    (:func:`newton_schulz_sqrt`, trace-normalised, ``iterations`` = 5) is averaged over each row into
    a C-vector, and ``sigmoid(conv1x1(relu(conv1x1(z))))`` (C -> C / r -> C, r = 8, with biases)
    gates the input: ``out = x * w``. The hidden width has a floor of ``min_hidden`` = 8 (ours, as for
    SE and CBAM); it is inactive from C = 64 on, i.e. at every level of the YOLOX models.

    Reduction: 8 is the default of the SOCA module in the authors' code; their SAN network builds it
    with reduction 16 (for 64 channels). We keep 8, the default every SOCA checkpoint of this project
    was trained with (changing it changes the gate's shapes); pass ``reduction=16`` for SAN's setting.

    Accuracy of the square root: five iterations are an approximation, not a converged root. Against
    the exact root (eigendecomposition), the relative Frobenius error for the covariance of white
    features (1024 positions) is 0.24 at 64 channels, 0.39 at 128, 0.53 at 256 and 0.63 at 512: it
    grows with C because the trace-normalised eigenvalues (about 1 / C) are where Newton-Schulz starts
    slowest. Correlated features converge faster (a rank-16 signal plus noise: 0.07-0.08 at 64-512
    channels); ten iterations bring white features at 512 channels to 0.03. The authors' code runs
    the same five iterations, so this is the block as published; ``iterations`` raises the accuracy
    at 2 C^3 operations per extra iteration.

    Each side of a map longer than ``isqrt(max_positions)`` cells (32 for the default 1024) is first
    average-pooled to that length before the covariance, so the positions are at most
    ``isqrt(max_positions) ** 2`` and the cost at most C^2 x 1024. The cap is per side, not on the
    total: a 64 x 8 map (512 positions) is still pooled to 32 x 8, and ``max_positions=1000`` caps
    each side at 31. The statistics are computed in float32 even under autocast, then cast to the
    gate's dtype (that of the model, also after ``.half()`` or ``.double()``); the gate is cast back to
    the input's dtype at the end. ``eps`` keeps the trace positive and the result
    finite when the covariance is rank-deficient (M - 1 < C, e.g. dark5 at 20 x 20 with 512 channels)
    or zero. The cost grows as C^3 (12 C x C products for 5 iterations): 512 channels cost about
    3.2 GFLOPs, which the model summary reports and which logs a warning above 10% of the model.

    Paper text vs authors' code: both normalise by the trace and use 5 Newton-Schulz iterations. The
    authors' code crops the central 1000 x 1000 region of larger maps where we pool to 32 x 32 (a
    detector's 80 x 80 map would otherwise cost C^2 x 6400), and it computes the square root with a
    hand-written backward pass; we use plain autograd, which also exports to ONNX.

    Args:
        channels: C, the channels of the input and the output.
        reduction: divides C to give the gate's hidden width ``max(min_hidden, C // reduction)``. Default: 8.
        min_hidden: the smallest hidden width. Default: 8.
        iterations: Newton-Schulz iterations of the square root. Default: 5.
        max_positions: caps each side of the map at ``isqrt(max_positions)`` cells (average pooling)
            before the covariance, so it bounds the total; it is not a cap on the total itself.
            Default: 1024 (32 per side).
        eps: added to the covariance's diagonal. Default: 1e-5.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    channel_gate = True  # one gate value per channel (what the attention probe reports)

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        min_hidden: int = 8,
        iterations: int = 5,
        max_positions: int = 1024,
        eps: float = 1e-5,
    ) -> None:
        """Build the block for ``channels`` channels with ``max(min_hidden, channels // reduction)`` hidden units."""
        super().__init__()
        reduction = _positive_int("soca", "reduction", reduction)
        min_hidden = _positive_int("soca", "min_hidden", min_hidden)
        self.iterations = _positive_int("soca", "iterations", iterations)
        self.max_side = math.isqrt(_positive_int("soca", "max_positions", max_positions))
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise UserError(f"attention 'soca': option 'eps' must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self.hidden = max(min_hidden, channels // reduction)
        self.conv_reduce = nn.Conv2d(channels, self.hidden, kernel_size=1)
        self.relu = nn.ReLU()
        self.conv_expand = nn.Conv2d(self.hidden, channels, kernel_size=1)

    def channel_statistics(self, x: torch.Tensor) -> torch.Tensor:
        """Return the N x C row means of the covariance square root, in float32."""
        x = x.float()
        height, width = _spatial_shape(x)
        rows = _adaptive_mean_matrix(height, self.max_side, x.dtype, x.device)
        columns = _adaptive_mean_matrix(width, self.max_side, x.dtype, x.device)
        pooled = rows @ x @ columns.transpose(0, 1)  # N x C x h x w with h, w <= max_side
        features = pooled.flatten(2)
        centred = features - features.mean(dim=2, keepdim=True)
        positions = (torch.clamp(height, max=self.max_side) * torch.clamp(width, max=self.max_side)).to(x.dtype)
        covariance = centred @ centred.transpose(1, 2) / positions
        identity = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
        root = newton_schulz_sqrt(covariance + self.eps * identity, self.iterations)
        return root.mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate each channel of ``x`` by its second-order statistics."""
        with _autocast_disabled(x.device):
            # In the gate's dtype: a whole-model cast (.half(), .double()) leaves its weights in that dtype.
            statistics = self.channel_statistics(x)[:, :, None, None].to(self.conv_reduce.weight.dtype)
            gate = torch.sigmoid(self.conv_expand(self.relu(self.conv_reduce(statistics))))
        return x * gate.to(x.dtype)


def _autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that turns autocast off on ``device`` (a no-op where autocast does not exist, e.g. meta)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


@register_attention("simam")
class SimAM(nn.Module):
    """SimAM, a parameter-free attention (Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free
    Attention Module for Convolutional Neural Networks", ICML 2021).

    Per channel, with ``mu`` the mean over H x W and ``var = sum((x - mu)^2) / (H W - 1)``, the
    inverse minimal energy ``e = (x - mu)^2 / (4 (var + lambda)) + 0.5`` (lambda = 1e-4) gates the
    input: ``out = x * sigmoid(e)``. A 1 x 1 map divides by 1 instead of 0 (its deviation is 0).

    Paper text vs authors' code: the paper's closed form estimates the variance over the M = H x W
    neurons of a channel with 1 / M; the authors' code divides by H x W - 1, which we follow.
    ``attention_init identity`` adds the block's only parameter (its ``scale``).

    Args:
        channels: C; the block has no parameters, so it only keeps the common ``Block(channels)`` interface.
        energy_lambda: the regulariser lambda added to the variance. Default: 1e-4.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    def __init__(self, channels: int, energy_lambda: float = 1e-4) -> None:
        """Build the block; it has no parameters, ``channels`` only fixes the interface."""
        super().__init__()
        if isinstance(energy_lambda, bool) or not isinstance(energy_lambda, (int, float)) or not energy_lambda > 0:
            raise UserError(
                f"attention 'simam': option 'energy_lambda' must be a positive number, got {energy_lambda!r}"
            )
        self.energy_lambda = float(energy_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate every activation of ``x`` by the sigmoid of its inverse energy."""
        height, width = _spatial_shape(x)
        others = torch.clamp(height * width - 1, min=1).to(x.dtype)
        deviation = (x - x.mean(dim=(2, 3), keepdim=True)).square()
        variance = deviation.sum(dim=(2, 3), keepdim=True) / others
        inverse_energy = deviation / (4 * (variance + self.energy_lambda)) + 0.5
        return x * torch.sigmoid(inverse_energy)


def _largest_divisor_up_to(number: int, limit: int) -> int:
    """The largest divisor of ``number`` that is not above ``limit``."""
    return max(divisor for divisor in range(1, min(number, limit) + 1) if number % divisor == 0)


@register_attention("ema")
class EMA(nn.Module):
    """Efficient Multi-scale Attention (Ouyang, He, Zhang, Luo, Guo, Zhan, Huang, "Efficient Multi-Scale
    Attention Module with Cross-Spatial Learning", ICASSP 2023).

    The C channels are split into G groups that are folded into the batch (each group: C / G channels).
    Per group, a 1x1 branch averages along W and along H, mixes the two descriptors with one shared
    1x1 conv (C/G -> C/G, no reduction) and gates the group by the two sigmoids (as Coordinate
    Attention does); a 3x3 branch is one 3x3 conv (C/G -> C/G). Cross-spatial learning: each branch's
    global mean, through a softmax over the C/G channels, weights the other branch's features into one
    H x W map; the two maps are added and a sigmoid of the sum gates the group.

    One of the two weightings is a learnt constant, not a function of the input: the GroupNorm
    (one group per channel) makes each channel of the 1x1 branch zero-mean over H x W before its
    affine step, so that branch's global mean is exactly the GroupNorm's bias, and its softmax weights
    the 3x3 branch the same way for every image. Only the 3x3 branch's weighting (of the 1x1 branch)
    depends on the input. This is how the authors' code computes it; we keep it.

    ``groups`` defaults to 32; when C is not a multiple of it, the largest divisor of C below it is
    used (with a log line), so every channel count builds.

    Paper text vs authors' code: the paper describes the 1x1 branch's output as re-weighted by the
    two directional gates and then used directly; the authors' code normalises it with a GroupNorm of
    one group per channel (affine) before the cross-spatial step, and we follow the code. The paper
    also leaves G open; the code's default is 32, which we keep.

    Args:
        channels: C, the channels of the input and the output.
        groups: G, the number of channel groups; lowered to the largest divisor of C not above it. Default: 32.

    Shape:
        - Input: ``[N, C, H, W]``, any N, H and W.
        - Output: ``[N, C, H, W]``, the input's shape and dtype.
    """

    def __init__(self, channels: int, groups: int = 32) -> None:
        """Build the block for ``channels`` channels split into ``groups`` groups (lowered to divide C)."""
        super().__init__()
        requested = _positive_int("ema", "groups", groups)
        self.groups = _largest_divisor_up_to(channels, requested)
        if self.groups != requested:
            logger.info(f"attention 'ema': {channels} channels are not a multiple of groups={requested}; "
                        f"using groups={self.groups}")
        width = channels // self.groups
        self.conv1x1 = nn.Conv2d(width, width, kernel_size=1)
        self.conv3x3 = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate each channel group of ``x`` by its cross-spatial attention map."""
        batch, channels, height, width = x.shape
        grouped = x.reshape(batch * self.groups, channels // self.groups, height, width)
        row_descriptor = grouped.mean(dim=3, keepdim=True)  # B' x c x H x 1
        column_descriptor = grouped.mean(dim=2, keepdim=True).transpose(2, 3)  # B' x c x W x 1
        mixed = self.conv1x1(torch.cat([row_descriptor, column_descriptor], dim=2))
        row_gate = torch.sigmoid(mixed[:, :, :height])
        column_gate = torch.sigmoid(mixed[:, :, height:].transpose(2, 3))
        coordinate_branch = self.norm(grouped * row_gate * column_gate)
        local_branch = self.conv3x3(grouped)
        coordinate_weights = torch.softmax(coordinate_branch.mean(dim=(2, 3)), dim=-1).unsqueeze(1)  # B' x 1 x c
        local_weights = torch.softmax(local_branch.mean(dim=(2, 3)), dim=-1).unsqueeze(1)
        spatial_map = coordinate_weights @ local_branch.flatten(2) + local_weights @ coordinate_branch.flatten(2)
        gate = torch.sigmoid(spatial_map).reshape(batch * self.groups, 1, height, width)
        return (grouped * gate).reshape(batch, channels, height, width)
