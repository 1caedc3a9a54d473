"""Backbones: Darknet-21/53 (YOLOv3) and CSPDarknet (YOLOX), each returning a dict of named stages."""

from collections.abc import Sequence

import torch
from torch import nn

from yolox.models.network_blocks import BaseConv, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_class

STAGE_NAMES = ("stem", "dark2", "dark3", "dark4", "dark5")


def _check_out_features(out_features: Sequence[str]) -> tuple:
    """Return ``out_features`` as a tuple after checking each is a stage name."""
    unknown = [name for name in out_features if name not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown backbone output(s) {unknown}: choose from {', '.join(STAGE_NAMES)}")
    return tuple(out_features)


def _stage_outputs(backbone: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``x`` through the backbone's stages in order; return those named in its ``out_features``."""
    outputs = {}
    for name in STAGE_NAMES:
        x = getattr(backbone, name)(x)
        outputs[name] = x
    return {name: outputs[name] for name in backbone.out_features}


class Darknet(nn.Module):
    """Darknet-21 or Darknet-53 with the YOLOv3 SPP head on dark5 (leaky ReLU throughout).

    Args:
        depth: 21 or 53, the residual units per stage. Default: 53.
        in_channels: channels of the input images. Default: 3.
        stem_out_channels: s, the stem's first conv width; the stages have 2s (stem), 4s (dark2), 8s (dark3),
            16s (dark4) and 16s (dark5, after the SPP head) channels. Default: 32.
        out_features: the stages ``forward`` returns, from stem, dark2, dark3, dark4, dark5.
            Default: dark3, dark4, dark5.
    """

    # Residual units per stage (dark2..dark5) for each supported depth.
    depth_to_blocks = {21: [1, 2, 2, 1], 53: [2, 8, 8, 4]}

    def __init__(
        self,
        depth: int = 53,
        in_channels: int = 3,
        stem_out_channels: int = 32,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
    ) -> None:
        super().__init__()
        if depth not in self.depth_to_blocks:
            raise ValueError(f"Darknet depth {depth} is not supported: use one of {sorted(self.depth_to_blocks)}")
        self.out_features = _check_out_features(out_features)
        blocks = self.depth_to_blocks[depth]
        self.stem = nn.Sequential(
            BaseConv(in_channels, stem_out_channels, ksize=3, stride=1, act="lrelu"),
            *self._stage(stem_out_channels, num_blocks=1),
        )
        channels = stem_out_channels * 2  # 64 after the stem
        self.dark2 = nn.Sequential(*self._stage(channels, blocks[0]))
        channels *= 2
        self.dark3 = nn.Sequential(*self._stage(channels, blocks[1]))
        channels *= 2
        self.dark4 = nn.Sequential(*self._stage(channels, blocks[2]))
        channels *= 2
        self.dark5 = nn.Sequential(
            *self._stage(channels, blocks[3]),
            *self._spp_block(channels * 2, hidden=channels, wide=channels * 2),
        )

    @staticmethod
    def _stage(in_channels: int, num_blocks: int) -> list[nn.Module]:
        """Return a stride-2 conv that doubles the channels followed by ``num_blocks`` residual units."""
        out_channels = in_channels * 2
        return [BaseConv(in_channels, out_channels, ksize=3, stride=2, act="lrelu")] + [
            ResLayer(out_channels) for _ in range(num_blocks)
        ]

    @staticmethod
    def _spp_block(in_channels: int, hidden: int, wide: int) -> list[nn.Module]:
        """Return the YOLOv3-SPP tail: 1x1, 3x3, SPP, 3x3, 1x1, ending with ``hidden`` channels."""
        return [
            BaseConv(in_channels, hidden, 1, stride=1, act="lrelu"),
            BaseConv(hidden, wide, 3, stride=1, act="lrelu"),
            SPPBottleneck(wide, hidden, activation="lrelu"),
            BaseConv(hidden, wide, 3, stride=1, act="lrelu"),
            BaseConv(wide, hidden, 1, stride=1, act="lrelu"),
        ]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the requested stage outputs by name.

        Args:
            x: ``[B, in_channels, H, W]`` images; H and W multiples of 32.

        Returns:
            ``{name: [B, channels, H / stride, W / stride]}`` for each of ``out_features``, with strides
            2 (stem), 4 (dark2), 8 (dark3), 16 (dark4), 32 (dark5).
        """
        return _stage_outputs(self, x)


class CSPDarknet(nn.Module):
    """The YOLOX backbone: Focus stem and four CSP stages, scaled by depth and width multipliers.

    Args:
        dep_mul: depth multiplier of the CSP layers (1.0 is YOLOX-L, 0.33 YOLOX-S).
        wid_mul: width multiplier; with ``c = int(64 * wid_mul)`` the stages have c (stem), 2c (dark2),
            4c (dark3), 8c (dark4) and 16c (dark5) channels.
        out_features: the stages ``forward`` returns, from stem, dark2, dark3, dark4, dark5.
            Default: dark3, dark4, dark5.
        depthwise: depthwise-separable 3x3 convolutions. Default: False.
        act: activation of every conv unit, a name of ``network_blocks.ACTIVATIONS``. Default: "silu".
    """

    def __init__(
        self,
        dep_mul: float,
        wid_mul: float,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.out_features = _check_out_features(out_features)
        Conv = conv_class(depthwise)
        base_channels = int(wid_mul * 64)
        base_depth = max(round(dep_mul * 3), 1)

        self.stem = Focus(3, base_channels, ksize=3, act=act)
        self.dark2 = nn.Sequential(
            Conv(base_channels, base_channels * 2, 3, 2, act=act),
            CSPLayer(base_channels * 2, base_channels * 2, n=base_depth, depthwise=depthwise, act=act),
        )
        self.dark3 = nn.Sequential(
            Conv(base_channels * 2, base_channels * 4, 3, 2, act=act),
            CSPLayer(base_channels * 4, base_channels * 4, n=base_depth * 3, depthwise=depthwise, act=act),
        )
        self.dark4 = nn.Sequential(
            Conv(base_channels * 4, base_channels * 8, 3, 2, act=act),
            CSPLayer(base_channels * 8, base_channels * 8, n=base_depth * 3, depthwise=depthwise, act=act),
        )
        self.dark5 = nn.Sequential(
            Conv(base_channels * 8, base_channels * 16, 3, 2, act=act),
            SPPBottleneck(base_channels * 16, base_channels * 16, activation=act),
            CSPLayer(
                base_channels * 16, base_channels * 16, n=base_depth, shortcut=False, depthwise=depthwise, act=act
            ),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the requested stage outputs by name.

        Args:
            x: ``[B, 3, H, W]`` images; H and W multiples of 32.

        Returns:
            ``{name: [B, channels, H / stride, W / stride]}`` for each of ``out_features``, with strides
            2 (stem), 4 (dark2), 8 (dark3), 16 (dark4), 32 (dark5).
        """
        return _stage_outputs(self, x)
