"""YOLOPAFPN: CSPDarknet plus the PAN neck, with optional attention blocks before and/or after fusion.

Attention positions (``attention_position``):

- ``backbone``: one block per chosen backbone output (dark3/dark4/dark5) before the neck fuses them;
  weights under ``backbone.attn.<level>.*`` (``backbone`` being the YOLOX attribute holding this neck).
- ``neck``: one block per chosen PAN output (pan3/pan4/pan5, strides 8/16/32) after the last CSP layers,
  before the head; weights under ``backbone.neck_attn.<level>.*``.
- ``both``: the two together (six levels by default).

The level names a position accepts come from :func:`attention_levels_for`; a backbone with other output
names passes them as ``backbone_levels``. The blocks are built by :func:`build_attention_blocks` and applied
by :func:`apply_attention`, which a neck on another backbone can reuse as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from yolox.models.attention import ATTENTION_POSITIONS, attention_rng, build_attention, normalize_attention_name
from yolox.models.darknet import CSPDarknet
from yolox.models.network_blocks import BaseConv, CSPLayer, check_input_size, conv_class
from yolox.utils.errors import UserError

# CSPDarknet outputs the neck fuses (strides 8, 16, 32): the ``backbone`` position's levels.
BACKBONE_LEVELS = ("dark3", "dark4", "dark5")
# PAN outputs the head reads (strides 8, 16, 32): the ``neck`` position's levels.
NECK_LEVELS = ("pan3", "pan4", "pan5")


def normalize_attention_position(position: str) -> str:
    """Return ``position`` in its canonical spelling, or raise a UserError listing the positions."""
    normalized = normalize_attention_name(position)
    if normalized not in ATTENTION_POSITIONS:
        raise UserError(f"attention position {position!r} is unknown: use one of {', '.join(ATTENTION_POSITIONS)}")
    return normalized


def attention_levels_for(position: str, backbone_levels: Sequence[str] = BACKBONE_LEVELS) -> tuple[str, ...]:
    """The level names at which ``position`` can apply attention, which are also its default levels."""
    position = normalize_attention_position(position)
    backbone_levels = tuple(backbone_levels)
    return {
        "backbone": backbone_levels,
        "neck": NECK_LEVELS,
        "both": backbone_levels + NECK_LEVELS,
    }[position]


def resolve_attention_levels(
    position: str, levels: str | Iterable[str] | None = None, backbone_levels: Sequence[str] = BACKBONE_LEVELS
) -> tuple[str, ...]:
    """Return the chosen ``levels`` of ``position`` normalised, without duplicates, in network order.

    ``None`` means every level of the position. A single level may be a plain string. An empty choice or
    a name the position does not have raises a UserError that lists the accepted names.
    """
    available = attention_levels_for(position, backbone_levels)
    if levels is None:
        return available
    if isinstance(levels, str):
        levels = (levels,)
    chosen = [normalize_attention_name(level) for level in levels]
    unknown = [level for level in chosen if level not in available]
    if unknown or not chosen:
        problem = f"attention level {unknown[0]!r} is not" if unknown else "no attention level is"
        raise UserError(
            f"{problem} available at position {normalize_attention_name(position)!r}: "
            f"choose a non-empty subset of {', '.join(available)}"
        )
    return tuple(level for level in available if level in chosen)


def build_attention_blocks(
    name: str, channels_by_level: Mapping[str, int], init: str = "paper", options: Mapping | None = None
) -> nn.ModuleDict:
    """One attention block ``name`` per level of ``channels_by_level``, keyed by the level name.

    Call it inside :func:`yolox.models.attention.attention_rng`, once for all of a model's blocks, so
    that the rest of the model gets the same weights with and without attention under one seed.
    """
    options = dict(options or {})
    return nn.ModuleDict(
        {level: build_attention(name, channels, init=init, **options) for level, channels in channels_by_level.items()}
    )


def apply_attention(
    blocks: nn.ModuleDict, levels: Sequence[str], features: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Return ``features`` with the block of each level applied where ``blocks`` has one."""
    return [
        blocks[level](feature) if level in blocks else feature
        for level, feature in zip(levels, features, strict=True)
    ]


class YOLOPAFPN(nn.Module):
    """CSPDarknet (or a given backbone) with a top-down then bottom-up CSP path aggregation neck (YOLOX).

    Args:
        depth: depth multiplier of the backbone and the neck's CSP layers (1.0 is YOLOX-L). Default: 1.0.
        width: width multiplier; the neck's levels have ``int(c * width)`` channels for c in ``in_channels``.
            Default: 1.0.
        in_features: the three backbone outputs the neck fuses, finest first. Default: dark3, dark4, dark5.
        in_channels: the channels of those outputs at ``width = 1``. Default: (256, 512, 1024).
        depthwise: depthwise-separable 3x3 convolutions (YOLOX-Nano). Default: False.
        act: activation of every conv unit, a name of ``network_blocks.ACTIVATIONS``. Default: "silu".
        attention: registered attention block name (any case), or None for none. Default: None.
        attention_levels: the levels that get a block, a subset of ``in_features`` (backbone position) and/or
            pan3, pan4, pan5 (neck position), or None for every level of ``attention_position``. Default: None.
        attention_kwargs: options passed to every block (e.g. ``{"reduction": 8}``). Default: None.
        attention_init: "paper" (the block as published) or "identity" (output equals input at step 0).
            Default: "paper".
        attention_position: "backbone" (on the backbone outputs, before fusion), "neck" (on the PAN outputs)
            or "both". Default: "backbone".
        backbone: a module to use instead of CSPDarknet (see ``__init__``), or None. Default: None.
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        in_features: Sequence[str] = BACKBONE_LEVELS,
        in_channels: Sequence[int] = (256, 512, 1024),
        depthwise: bool = False,
        act: str = "silu",
        attention: str | None = None,
        attention_levels: str | Iterable[str] | None = None,
        attention_kwargs: Mapping | None = None,
        attention_init: str = "paper",
        attention_position: str = "backbone",
        backbone: nn.Module | None = None,
    ) -> None:
        """Build the neck; ``attention_levels`` None means every level of ``attention_position``.

        ``backbone`` replaces CSPDarknet with a module returning a dict of its ``out_features`` (three
        names) whose ``out_channels`` the neck takes: a 1x1 BaseConv under ``lateral.<level>`` maps a
        level to ``in_channels * width`` where the two differ. Backbone-position attention then sits
        on the backbone's own outputs, before those laterals.
        """
        super().__init__()
        if backbone is not None:
            in_features = tuple(backbone.out_features)
        if len(in_features) != 3 or len(in_channels) != 3:
            raise ValueError(
                f"YOLOPAFPN needs three input levels, got in_features={tuple(in_features)} "
                f"and in_channels={tuple(in_channels)}"
            )
        self.in_features = tuple(in_features)
        self.in_channels = tuple(in_channels)
        position = normalize_attention_position(attention_position)
        levels = resolve_attention_levels(position, attention_levels, self.in_features)
        c3, c4, c5 = (int(channels * width) for channels in in_channels)
        if backbone is None:
            backbone = CSPDarknet(depth, width, out_features=in_features, depthwise=depthwise, act=act)
            backbone_out_channels = (c3, c4, c5)
        else:
            backbone_out_channels = tuple(backbone.out_channels)
        self.backbone = backbone
        self.lateral = nn.ModuleDict({
            level: BaseConv(channels, neck_channels, 1, 1, act=act)
            for level, channels, neck_channels in zip(self.in_features, backbone_out_channels, (c3, c4, c5), strict=True)
            if channels != neck_channels
        })
        Conv = conv_class(depthwise)
        num_blocks = round(3 * depth)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # Top-down path.
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c4, c4, num_blocks, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c3, c3, num_blocks, False, depthwise=depthwise, act=act)
        # Bottom-up path.
        self.bu_conv2 = Conv(c3, c3, 3, 2, act=act)
        self.C3_n3 = CSPLayer(2 * c3, c4, num_blocks, False, depthwise=depthwise, act=act)
        self.bu_conv1 = Conv(c4, c4, 3, 2, act=act)
        self.C3_n4 = CSPLayer(2 * c4, c5, num_blocks, False, depthwise=depthwise, act=act)

        # Empty dicts when attention is off, so the state dict is exactly the official one.
        self.attention = normalize_attention_name(attention)
        self.attention_position = position
        self.attention_levels = levels if attention is not None else ()
        self.attn = nn.ModuleDict()
        self.neck_attn = nn.ModuleDict()
        if attention is not None:
            backbone_channels = dict(zip(self.in_features, backbone_out_channels, strict=True))
            neck_channels = dict(zip(NECK_LEVELS, (c3, c4, c5), strict=True))
            backbone_channels = {level: ch for level, ch in backbone_channels.items() if level in levels}
            neck_channels = {level: ch for level, ch in neck_channels.items() if level in levels}
            with attention_rng():
                self.attn = build_attention_blocks(attention, backbone_channels, attention_init, attention_kwargs)
                self.neck_attn = build_attention_blocks(attention, neck_channels, attention_init, attention_kwargs)

    def attention_blocks(self) -> dict[str, nn.Module]:
        """The attention blocks by level name (backbone levels first), empty when attention is off."""
        return {**self.attn, **self.neck_attn}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the three fused feature maps (strides 8, 16, 32) for ``images``.

        Args:
            images: ``[B, 3, H, W]`` float BGR images in 0..255; H and W must be multiples of 32.

        Returns:
            ``(pan3, pan4, pan5)``: ``[B, c_i, H / s_i, W / s_i]`` for strides s = 8, 16, 32, with
            ``c_i = int(in_channels[i] * width)``.
        """
        check_input_size(images)
        features: dict[str, torch.Tensor] = self.backbone(images)
        x2, x1, x0 = apply_attention(self.attn, self.in_features, [features[name] for name in self.in_features])
        x2, x1, x0 = apply_attention(self.lateral, self.in_features, (x2, x1, x0))

        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))

        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        pan3, pan4, pan5 = apply_attention(self.neck_attn, NECK_LEVELS, (pan_out2, pan_out1, pan_out0))
        return pan3, pan4, pan5
