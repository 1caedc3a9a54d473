"""Convolution units and the CSP building blocks shared by the backbones, necks and the head."""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from yolox.utils.errors import UserError

# The one table of activation names, used by every ``act`` option (conv units, backbones, head, attention
# blocks): name -> builder taking ``inplace``.
ACTIVATIONS: dict[str, Callable[[bool], nn.Module]] = {
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "lrelu": lambda inplace: nn.LeakyReLU(0.1, inplace=inplace),
    "hswish": lambda inplace: nn.Hardswish(inplace=inplace),
}


def get_activation(name: str = "silu", inplace: bool = True) -> nn.Module:
    """Return a fresh activation module for ``name`` (a key of ``ACTIVATIONS``; lrelu has slope 0.1)."""
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}: use one of {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name](inplace)


def init_bn(model: nn.Module, eps: float = 1e-3, momentum: float = 0.03) -> nn.Module:
    """Set ``eps`` and ``momentum`` of every BatchNorm layer in ``model`` (YOLOX trains with 1e-3 / 0.03)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = eps
            module.momentum = momentum
    return model


def check_input_size(images: torch.Tensor, stride: int = 32) -> None:
    """Raise ValueError unless the height and width of ``images`` are multiples of ``stride``."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return  # traced, exported and compiled graphs keep H and W symbolic; the check belongs to eager use
    height, width = images.shape[-2:]
    if height % stride or width % stride:
        raise ValueError(
            f"input size {height}x{width} (HxW) is not a multiple of {stride}: "
            f"resize or pad the images to multiples of {stride}, e.g. {_round_up(height, stride)}x{_round_up(width, stride)}"
        )


def _round_up(value: int, multiple: int) -> int:
    """Return the smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // multiple) * multiple


class BaseConv(nn.Module):
    """Conv2d (no bias, 'same' padding) followed by BatchNorm and an activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ksize: int,
        stride: int,
        groups: int = 1,
        bias: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, ksize, stride=stride, padding=(ksize - 1) // 2, groups=groups, bias=bias
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = get_activation(act)

    # True: train-mode BN + SiLU keep one feature map less for backward and recompute it there (see
    # set_bn_memory_saving): 5% less memory for yolox-s at 640, but a slower backward (yolox-nano at 416: 1.1x),
    # so it is off unless the exp key bn_memory_saving asks for it.
    bn_memory_saving = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, BN and activation."""
        x = self.conv(x)
        if self.bn_memory_saving and _recomputes_bn_output(self.bn, self.act, x):
            return batch_norm_silu(x, self.bn)
        return self.act(self.bn(x))

    def fuseforward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv and activation only: used once BN has been folded into the conv weights."""
        return self.act(self.conv(x))


class _BatchNormSiLUFunction(torch.autograd.Function):
    """Train-mode BatchNorm then SiLU that keeps only the BN input (and batch statistics) for backward.

    Autograd would otherwise keep both the conv output (for BN) and the BN output (for SiLU; an in-place
    SiLU even copies it first). The BN output is recomputed in backward from the input and the saved
    statistics instead: one feature map less per conv unit and one copy less per step.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        running_mean: torch.Tensor,
        running_var: torch.Tensor,
        momentum: float,
        eps: float,
    ) -> torch.Tensor:
        """Normalise with batch statistics (updating the running ones) and apply SiLU."""
        normalized, mean, invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, momentum, eps
        )
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.eps = eps
        return F.silu(normalized)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Recompute the BN output, then chain SiLU's and BatchNorm's own backward kernels."""
        x, weight, bias, mean, invstd = ctx.saved_tensors
        scale = weight * invstd
        shift = bias - mean * scale
        normalized = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        grad_normalized = torch.ops.aten.silu_backward(grad_output, normalized)
        grad_x, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_normalized, x, weight, None, None, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3])
        )
        return grad_x, grad_weight, grad_bias, None, None, None, None


def _recomputes_bn_output(bn: nn.Module, act: nn.Module, x: torch.Tensor) -> bool:
    """True when BN + SiLU can take the memory-saving training path (plain BatchNorm2d in train mode, no autocast).

    Everything else (eval, no grad, SyncBatchNorm, other activations, autocast, tracing) keeps the module path.
    """
    return (
        type(bn) is nn.BatchNorm2d
        and bn.training
        and bn.affine
        and bn.track_running_stats
        and isinstance(act, nn.SiLU)
        and torch.is_grad_enabled()
        and not torch.is_autocast_enabled(x.device.type)
        and not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling())
    )


def batch_norm_silu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``silu(bn(x))`` for a train-mode ``bn``, with the same outputs, gradients and running statistics.

    The running statistics and ``num_batches_tracked`` are updated exactly as ``nn.BatchNorm2d`` does.
    """
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    return _BatchNormSiLUFunction.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum, bn.eps)


def set_bn_memory_saving(model: nn.Module, enabled: bool) -> int:
    """Turn the BN-output recomputation of every :class:`BaseConv` in ``model`` on or off; how many it set.

    On: one feature map less per conv unit is kept for backward (training memory), at the cost of recomputing
    it in backward. Outputs, gradients and running statistics are the same either way (within float rounding).
    """
    units = [module for module in model.modules() if isinstance(module, BaseConv)]
    for unit in units:
        unit.bn_memory_saving = bool(enabled)
    return len(units)


def apply_bn_memory_saving(model: nn.Module, exp: object) -> None:
    """Set the exp's ``bn_memory_saving`` key (off for an exp without it) on every conv unit of ``model``."""
    set_bn_memory_saving(model, getattr(exp, "bn_memory_saving", False))


class DWConv(nn.Module):
    """Depthwise separable convolution: a per-channel ``ksize`` conv then a 1x1 pointwise conv."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, groups=1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the depthwise then the pointwise conv."""
        return self.pconv(self.dconv(x))


def conv_class(depthwise: bool) -> type:
    """Return DWConv when ``depthwise`` else BaseConv: the 3x3 unit of the depthwise (nano) variants."""
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    """1x1 reduce then 3x3 conv, with an identity shortcut when enabled and the widths match."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv2 = conv_class(depthwise)(hidden, out_channels, 3, stride=1, act=act)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output, plus the input when the shortcut is active."""
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class ResLayer(nn.Module):
    """Darknet residual unit: 1x1 conv to half the channels, 3x3 conv back, plus the input."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        mid = in_channels // 2
        self.layer1 = BaseConv(in_channels, mid, 1, stride=1, act="lrelu")
        self.layer2 = BaseConv(mid, in_channels, 3, stride=1, act="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + layer2(layer1(x))``."""
        return x + self.layer2(self.layer1(x))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 reduce, concat with stride-1 max pools of several sizes, 1x1 fuse."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes) or list(kernel_sizes) != sorted(set(kernel_sizes)):
            raise ValueError(f"SPP kernel sizes must be odd and increasing, e.g. (5, 9, 13); got {tuple(kernel_sizes)}")
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=activation)
        self.kernel_sizes = tuple(kernel_sizes)
        # Stride-1 max pools compose: pooling a k-pool's output with a j-pool is a (k + j - 1)-pool, borders
        # included. So each level pools the previous one with the size difference plus one (5, 9, 13 -> three
        # 5-pools), the same values as pooling x directly at a fraction of the comparisons.
        steps = [k - previous + 1 for previous, k in zip((1,) + self.kernel_sizes[:-1], self.kernel_sizes)]
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in steps)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, stride=1, act=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fused multi-scale pooled features (pools of increasing size, computed as a cascade)."""
        x = self.conv1(x)
        pooled = [x]
        for pool in self.m:
            pooled.append(pool(pooled[-1]))
        return self.conv2(torch.cat(pooled, dim=1))


class CSPLayer(nn.Module):
    """Cross-stage partial block: one branch runs ``n`` bottlenecks, the other is a 1x1 projection."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, stride=1, act=act)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return conv3 of the concatenated bottleneck branch and projection branch."""
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class Focus(nn.Module):
    """Space-to-depth (each 2x2 pixel block becomes 4 channels) followed by a BaseConv."""

    def __init__(
        self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1, act: str = "silu"
    ) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stack the four pixel phases along channels (order: even-even, odd-row, odd-col, odd-odd) and convolve."""
        # Channel order follows the official weights: (row, col) phases (0,0), (1,0), (0,1), (1,1).
        phases = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(phases, dim=1))
