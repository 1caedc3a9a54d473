"""Model helpers: size and FLOP counts, conv+BN folding, freezing, mode switching, module swapping.

FLOP convention used by ``get_model_stats`` / ``get_model_info``: one multiply-add counts as 2 FLOPs
(what ``torch.utils.flop_counter.FlopCounterMode`` reports), measured on one image of the given size,
and only convolutions and matrix products are counted. BatchNorm, activations, sigmoids, elementwise
products, means/maxima, additions, upsampling and conv biases are not.

The official YOLOX table uses the same 2-per-multiply-add scale but its counter (thop) also charges
each eval-mode BatchNorm 2 operations per output element, doubled like the rest: so official GFLOPs
~= ours + 4 x (BatchNorm output elements) / 1e9. That is +0.12 for yolox-s at 640 (ours 26.69,
official 26.8) and +0.03 for yolox-nano at 416 (ours 1.045, official 1.08); the tests check this
relation against the reference table.

For the attention blocks, whose cost beyond their small convolutions is elementwise (pooling, gates,
the gating multiplies: a few operations per element of the feature map they gate), the reported
figure is a lower bound. The uncounted part is tiny next to the detector (about 1.4 M elements are
gated in yolox-s at 640, i.e. well under 0.01 GFLOPs), but it is memory traffic, so measure latency
rather than infer it from GFLOPs. Second-order attention (``soca``) is the exception: its C x C matrix
products cost C^3 per iteration, so the stats report every attention block's own FLOPs (found through
the ``attention_blocks()`` method of the necks that hold them), ``get_model_info`` shows their share and
:func:`attention_cost_warning` names blocks that add more than 10% to the model.

The counting runs on a shadow copy of the model on the ``meta`` device: shapes only, no arithmetic, no
memory for activations, and the model itself is not touched.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "adjust_status",
    "attention_cost_warning",
    "freeze_module",
    "fuse_conv_and_bn",
    "fuse_model",
    "get_model_info",
    "get_model_stats",
    "replace_module",
]


def _image_size(tsize: Sequence[int] | int) -> tuple[int, int]:
    """Return ``tsize`` as a positive (height, width) pair, or raise a ValueError naming it."""
    if isinstance(tsize, int) and not isinstance(tsize, bool):
        tsize = (tsize, tsize)
    if (
        not isinstance(tsize, Sequence)
        or len(tsize) != 2
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in tsize)
    ):
        raise ValueError(f"tsize must be a (height, width) pair of positive ints, got {tsize!r}")
    return int(tsize[0]), int(tsize[1])


def _meta_shadow(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the ``meta`` device (no data is copied)."""
    memo: dict[int, torch.Tensor] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        shadow = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            shadow = nn.Parameter(shadow, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = shadow
    return copy.deepcopy(model, memo)


def _attention_blocks(model: nn.Module) -> list[tuple[str, str, str]]:
    """``(module path, block name, level)`` of every attention block, from the owners' ``attention_blocks()``."""
    paths = {id(module): path for path, module in model.named_modules()}
    found = []
    for owner in model.modules():
        blocks = getattr(owner, "attention_blocks", None)
        if callable(blocks):
            name = str(getattr(owner, "attention", None))
            found.extend((paths[id(block)], name, level) for level, block in blocks().items())
    return found


def get_model_stats(model: nn.Module, tsize: Sequence[int] | int) -> dict:
    """Return the parameters and FLOPs of ``model`` for one 3-channel image of size ``tsize`` (h, w).

    Keys: ``params`` counts every parameter (trainable or frozen); ``gflops`` is 2 x multiply-adds / 1e9
    of an eval-mode forward pass (see the module docstring for what is not counted); ``attention`` lists
    ``{"block", "level", "gflops"}`` for every attention block (empty without attention), and
    ``attention_gflops`` is their sum. The model itself is not run (see the module docstring).
    """
    height, width = _image_size(tsize)
    params = sum(parameter.numel() for parameter in model.parameters())
    reference = next(model.parameters(), None)
    dtype = reference.dtype if reference is not None else torch.float32
    shadow = _meta_shadow(model).eval()
    image = torch.zeros(1, 3, height, width, device="meta", dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        shadow(image)
    per_module = counter.get_flop_counts()
    root = type(shadow).__name__
    attention = [
        {"block": name, "level": level, "gflops": sum(per_module.get(f"{root}.{path}", {}).values()) / 1e9}
        for path, name, level in _attention_blocks(shadow)
    ]
    return {
        "params": params,
        "gflops": counter.get_total_flops() / 1e9,
        "attention": attention,
        "attention_gflops": sum(entry["gflops"] for entry in attention),
    }


def get_model_info(model: nn.Module, tsize: Sequence[int] | int) -> str:
    """Return a one-line summary such as ``"Params: 8.97M, Gflops: 26.64"`` (1 multiply-add = 2 FLOPs).

    With attention blocks it adds their FLOPs and their share of the model, e.g.
    ``", attention Gflops: 4.13 (15.4%)"``.
    """
    stats = get_model_stats(model, tsize)
    info = f"Params: {stats['params'] / 1e6:.2f}M, Gflops: {stats['gflops']:.2f}"
    if stats["attention"]:
        share = 100 * stats["attention_gflops"] / stats["gflops"] if stats["gflops"] else 0.0
        info += f", attention Gflops: {stats['attention_gflops']:.2f} ({share:.1f}%)"
    return info


def attention_cost_warning(model: nn.Module, tsize: Sequence[int] | int, limit: float = 0.10) -> str | None:
    """A warning naming the attention blocks and levels when they add more than ``limit`` (a fraction) to
    the FLOPs of the model without them at image size ``tsize``; None when they stay within it."""
    stats = get_model_stats(model, tsize)
    base_gflops = stats["gflops"] - stats["attention_gflops"]
    if not stats["attention"] or base_gflops <= 0 or stats["attention_gflops"] <= limit * base_gflops:
        return None
    height, width = _image_size(tsize)
    costly = sorted(stats["attention"], key=lambda entry: -entry["gflops"])
    parts = ", ".join(
        f"'{entry['block']}' at {entry['level']} {entry['gflops']:.2f} ({100 * entry['gflops'] / base_gflops:.1f}%)"
        for entry in costly
    )
    return (
        f"attention adds {stats['attention_gflops']:.2f} GFLOPs, {100 * stats['attention_gflops'] / base_gflops:.1f}% "
        f"of the {base_gflops:.2f} GFLOPs of the model without it at {height}x{width} (over "
        f"{100 * limit:.0f}%): {parts}; consider fewer attention_levels"
    )


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a new Conv2d (with bias, no gradient) computing ``bn(conv(x))`` with ``bn``'s running stats.

    The BatchNorm is folded as ``w' = w * gamma / sqrt(var + eps)`` per output channel and
    ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``; the result equals the pair in eval mode.
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(
            f"fuse_conv_and_bn needs an nn.Conv2d and an nn.BatchNorm2d, got {type(conv).__name__} "
            f"and {type(bn).__name__}"
        )
    if conv.out_channels != bn.num_features or bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"cannot fold {bn} into {conv}: the BatchNorm needs running statistics and "
            f"{conv.out_channels} features"
        )
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    ).requires_grad_(False)
    with torch.no_grad():
        inv_std = torch.rsqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.weight is not None else torch.ones_like(inv_std)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(inv_std)
        channel_scale = gamma * inv_std
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(inv_std)
        fused.weight.copy_(conv.weight * channel_scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((conv_bias - bn.running_mean) * channel_scale + beta)
    return fused


def _is_unfused_conv_unit(module: nn.Module) -> bool:
    """True for a conv+BN+act unit (BaseConv's interface: ``conv``, ``bn``, ``fuseforward``) not yet fused."""
    return (
        isinstance(getattr(module, "conv", None), nn.Conv2d)
        and isinstance(getattr(module, "bn", None), nn.BatchNorm2d)
        and callable(getattr(module, "fuseforward", None))
    )


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold the BatchNorm of every BaseConv-like unit into its conv and switch it to ``fuseforward``.

    Meant for inference: the folded convs use the running statistics, so the fused model computes
    what the original computes in eval mode (within float rounding) and has no BatchNorm left to
    train. Units are recognised by BaseConv's interface (``conv``, ``bn`` and ``fuseforward``), and a module
    with a ``fold_batchnorm()`` method folds its own, so this helper does not depend on the models package.
    Calling it twice is harmless. Returns ``model``.
    """
    for module in list(model.modules()):
        if _is_unfused_conv_unit(module):
            module.conv = fuse_conv_and_bn(module.conv, module.bn)
            del module.bn
            module.forward = module.fuseforward
        elif callable(getattr(module, "fold_batchnorm", None)):
            module.fold_batchnorm()  # a module laid out otherwise (e.g. a torchvision ResNet trunk) folds its own
    return model


def freeze_module(module: nn.Module, name: str | None = None) -> nn.Module:
    """Stop gradients to ``module`` (or its submodule at the dotted path ``name``) and put it in eval mode.

    Eval mode keeps BatchNorm statistics and dropout fixed, but a later ``.train()`` on a parent
    switches it back; parameters stay frozen regardless. Returns ``module``.
    """
    target = module
    if name is not None:
        try:
            target = module.get_submodule(name)
        except AttributeError as err:
            children = ", ".join(child_name for child_name, _ in module.named_children()) or "(none)"
            raise ValueError(
                f"freeze_module: no submodule {name!r} in {type(module).__name__}; "
                f"give a dotted path such as one of its children: {children}"
            ) from err
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    target.eval()
    return module


@contextmanager
def adjust_status(module: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Put ``module`` in train (``training=True``) or eval mode inside the block, then restore every
    submodule's own previous mode (mixed modes, such as frozen BatchNorm, survive)."""
    previous_modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.train(training)
    try:
        yield module
    finally:
        for submodule, was_training in previous_modes:
            submodule.training = was_training


def replace_module(
    module: nn.Module,
    replaced_module_type: type[nn.Module],
    new_module_type: type[nn.Module],
    replace_func: Callable[[nn.Module, type[nn.Module]], nn.Module] | None = None,
) -> nn.Module:
    """Replace every submodule of type ``replaced_module_type`` by a new module, recursively.

    The replacement is ``replace_func(old_module, new_module_type)`` when given, else
    ``new_module_type()``; it takes over the old module's train/eval mode. Returns ``module``, or its
    replacement when ``module`` itself has the replaced type. Replacements are not searched again.
    """

    def make_replacement(old: nn.Module) -> nn.Module:
        new = replace_func(old, new_module_type) if replace_func is not None else new_module_type()
        return new.train(old.training)

    if isinstance(module, replaced_module_type):
        return make_replacement(module)
    for child_name, child in module.named_children():
        if isinstance(child, replaced_module_type):
            setattr(module, child_name, make_replacement(child))
        else:
            replace_module(child, replaced_module_type, new_module_type, replace_func)
    return module
