"""Model zoo: blocks, backbones, necks (with optional attention), the YOLOX head, losses and wrapper."""

from yolox.models.attention import (
    ATTENTION_INIT_MODES,
    ATTENTION_POSITIONS,
    available_attentions,
    build_attention,
    normalize_attention_name,
    register_attention,
)
from yolox.models.backbones import BACKBONES, Backbone, backbone_entry
from yolox.models.darknet import CSPDarknet, Darknet
from yolox.models.losses import IOUloss
from yolox.models.mobilenet import MobileNetV3Trunk
from yolox.models.network_blocks import (
    BaseConv,
    Bottleneck,
    CSPLayer,
    DWConv,
    Focus,
    ResLayer,
    SPPBottleneck,
    get_activation,
    init_bn,
)
from yolox.models.resnet import RESNET_BACKBONES, ResNetTrunk, load_resnet_weights
from yolox.models.yolo_fpn import YOLOFPN
from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import (
    BACKBONE_LEVELS,
    NECK_LEVELS,
    YOLOPAFPN,
    attention_levels_for,
    normalize_attention_position,
    resolve_attention_levels,
)
from yolox.models.yolox import YOLOX

__all__ = [
    "ATTENTION_INIT_MODES",
    "ATTENTION_POSITIONS",
    "BACKBONES",
    "BACKBONE_LEVELS",
    "Backbone",
    "BaseConv",
    "Bottleneck",
    "CSPDarknet",
    "CSPLayer",
    "DWConv",
    "Darknet",
    "Focus",
    "IOUloss",
    "MobileNetV3Trunk",
    "NECK_LEVELS",
    "RESNET_BACKBONES",
    "ResLayer",
    "ResNetTrunk",
    "SPPBottleneck",
    "YOLOFPN",
    "YOLOPAFPN",
    "YOLOX",
    "YOLOXHead",
    "attention_levels_for",
    "backbone_entry",
    "available_attentions",
    "build_attention",
    "get_activation",
    "init_bn",
    "load_resnet_weights",
    "normalize_attention_name",
    "normalize_attention_position",
    "register_attention",
    "resolve_attention_levels",
]

# The official model factories build from the default exps, which sit above this package: they are
# imported on first use, so importing yolox.models never imports yolox.exp.
_FACTORIES = ("create_yolox_model", "yolov3", "yolox_custom", "yolox_l", "yolox_m", "yolox_nano", "yolox_s",
              "yolox_tiny", "yolox_x")
__all__ += list(_FACTORIES)


def __getattr__(name: str):
    """Import ``yolox.models.build`` when one of the factories is first used."""
    if name not in _FACTORIES:
        raise AttributeError(f"module 'yolox.models' has no attribute {name!r}")
    from yolox.models import build

    return getattr(build, name)
