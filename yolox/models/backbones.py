"""The backbone table: every backbone the exp key ``backbone`` names, with what the neck and the exp need of it.

A line gives the trunk's builder (from the exp's backbone keys), the names and channels of its three outputs
(strides 8, 16, 32), whether it folds its BatchNorms for inference (``fold_batchnorm()``, which ``fuse_model``
calls), the exp keys it reads besides ``backbone``, how those are checked, and what is done to the trunk once
the whole model is built. Adding a backbone is one model file and one line here (see the README, "Adding a
backbone").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from yolox.models.mobilenet import MOBILENET_OUT_CHANNELS, MOBILENET_OUT_FEATURES, MobileNetV3Trunk
from yolox.models.resnet import (
    RESNET_BACKBONES,
    RESNET_OPTIONS,
    RESNET_OUT_FEATURES,
    ResNetTrunk,
    check_resnet_options,
    finish_resnet_trunk,
    resnet_out_channels,
)
from yolox.models.yolo_pafpn import BACKBONE_LEVELS
from yolox.utils.errors import UserError

Options = Mapping[str, Any]

# The exp keys a backbone may read besides ``backbone``, with their defaults (what "unset" means).
BACKBONE_OPTION_DEFAULTS: dict[str, Any] = dict(RESNET_OPTIONS)


@dataclass(frozen=True)
class Backbone:
    """One line of the backbone table."""

    family: str  # names the kind in messages: "ResNet", "MobileNetV3"
    levels: tuple[str, str, str]  # the output names, finest first (attention_levels uses them)
    channels: tuple[int, int, int] | None  # output channels; None: the neck's in_channels x width (CSPDarknet)
    folds_batchnorm: bool  # the trunk has fold_batchnorm(), which fuse_model calls
    build: Callable[[Options], nn.Module] | None = None  # the trunk; None: YOLOPAFPN builds its CSPDarknet
    options: tuple[str, ...] = ()  # the exp keys of BACKBONE_OPTION_DEFAULTS it reads
    check: Callable[[Options], dict[str, Any]] | None = None  # checks those keys, returns them normalised
    finish: Callable[[nn.Module, Options], None] | None = None  # after the model's BatchNorm set-up


def _resnet(name: str) -> Backbone:
    """The line of one torchvision ResNet depth."""
    return Backbone(
        family="ResNet", levels=RESNET_OUT_FEATURES, channels=resnet_out_channels(name), folds_batchnorm=True,
        build=lambda options: ResNetTrunk.from_options(name, options), options=tuple(RESNET_OPTIONS),
        check=check_resnet_options, finish=finish_resnet_trunk,
    )


BACKBONES: dict[str, Backbone] = {
    # CSPDarknet's outputs follow the neck's width (in_channels x width); its BatchNorms fold as the neck's do.
    "cspdarknet": Backbone(family="CSPDarknet", levels=BACKBONE_LEVELS, channels=None, folds_batchnorm=True),
    **{name: _resnet(name) for name in RESNET_BACKBONES},
    "mobilenet_v3_large": Backbone(
        family="MobileNetV3", levels=MOBILENET_OUT_FEATURES, channels=MOBILENET_OUT_CHANNELS, folds_batchnorm=True,
        build=lambda options: MobileNetV3Trunk(),
    ),
}


def backbone_entry(name: str) -> Backbone:
    """The table line of ``name``, or a UserError listing every backbone."""
    if name not in BACKBONES:
        raise UserError(f"exp key backbone={name!r} is unknown: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def check_backbone_options(name: str, options: Options) -> dict[str, Any]:
    """The backbone keys of an exp checked for backbone ``name``: keys it does not read must stay unset.

    Returns the keys it reads, normalised by its own check.
    """
    entry = backbone_entry(name)
    foreign = [f"{key}={value!r}" for key, value in options.items()
               if key not in entry.options and value != BACKBONE_OPTION_DEFAULTS[key]]
    if foreign:
        keys = [item.split("=", 1)[0] for item in foreign]
        takers = [backbone for backbone, line in BACKBONES.items() if set(keys) <= set(line.options)]
        families = " or ".join(dict.fromkeys(BACKBONES[backbone].family for backbone in takers)) or "another"
        raise UserError(f"exp keys {', '.join(foreign)} need a {families} backbone: set backbone to one of "
                        f"{', '.join(takers)}, or unset them")
    own = {key: options[key] for key in entry.options}
    return entry.check(own) if entry.check is not None else own


def build_backbone(name: str, options: Options) -> nn.Module | None:
    """The trunk of backbone ``name`` built from the exp's backbone keys (None: the neck builds CSPDarknet)."""
    entry = backbone_entry(name)
    return entry.build(options) if entry.build is not None else None


def finish_backbone(name: str, trunk: nn.Module | None, options: Options) -> None:
    """What a backbone does once the whole model exists (torchvision's BatchNorm eps, local weights)."""
    entry = backbone_entry(name)
    if trunk is not None and entry.finish is not None:
        entry.finish(trunk, options)
