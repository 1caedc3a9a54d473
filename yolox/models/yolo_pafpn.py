"""YOLOPAFPN: CSPDarknet plus the PAN neck, with optional attention blocks on the backbone outputs."""

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from yolox.models.attention import build_attention
from yolox.models.darknet import CSPDarknet
from yolox.models.network_blocks import BaseConv, CSPLayer, check_input_size, conv_class

ATTENTION_LEVELS = ("dark3", "dark4", "dark5")


def normalize_attention_levels(levels: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """Return ``levels`` as a duplicate-free tuple, raising ValueError for a name outside dark3/dark4/dark5."""
    if isinstance(levels, str):
        levels = (levels,)  # a single level given as a plain string
    normalized = []
    for level in levels:
        if level not in ATTENTION_LEVELS:
            raise ValueError(
                f"attention level {level!r} is not supported: attention_levels must be a subset of "
                f"{', '.join(ATTENTION_LEVELS)}"
            )
        if level not in normalized:
            normalized.append(level)
    return tuple(normalized)


class YOLOPAFPN(nn.Module):
    """CSPDarknet backbone with a top-down then bottom-up CSP path aggregation neck (YOLOX)."""

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        in_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        in_channels: Sequence[int] = (256, 512, 1024),
        depthwise: bool = False,
        act: str = "silu",
        attention: Optional[str] = None,
        attention_levels: Union[str, Iterable[str]] = ATTENTION_LEVELS,
        attention_kwargs: Optional[Mapping] = None,
        attention_init: str = "paper",
    ) -> None:
        super().__init__()
        if len(in_features) != 3 or len(in_channels) != 3:
            raise ValueError(
                f"YOLOPAFPN needs three input levels, got in_features={tuple(in_features)} "
                f"and in_channels={tuple(in_channels)}"
            )
        levels = normalize_attention_levels(attention_levels)
        if attention is not None and not levels:
            raise ValueError(f"attention={attention!r} needs at least one level in {', '.join(ATTENTION_LEVELS)}")
        self.backbone = CSPDarknet(depth, width, out_features=in_features, depthwise=depthwise, act=act)
        self.in_features = tuple(in_features)
        self.in_channels = tuple(in_channels)
        Conv = conv_class(depthwise)
        c3, c4, c5 = (int(channels * width) for channels in in_channels)
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

        # One block per chosen level; empty when attention is off, so the state dict is the official one.
        self.attention = attention
        self.attention_levels = levels if attention is not None else ()
        self.attn = nn.ModuleDict()
        if attention is not None:
            level_channels = dict(zip(self.in_features, (c3, c4, c5)))
            for level in self.in_features:
                if level in levels:
                    self.attn[level] = build_attention(
                        attention, level_channels[level], init=attention_init, **dict(attention_kwargs or {})
                    )

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the three fused feature maps (strides 8, 16, 32) for ``images``."""
        check_input_size(images)
        features: Dict[str, torch.Tensor] = self.backbone(images)
        x2, x1, x0 = (
            self.attn[name](features[name]) if name in self.attn else features[name] for name in self.in_features
        )

        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))

        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0
