"""Model zoo: blocks, backbones, necks (with optional attention), the YOLOX head, losses and wrapper."""

from yolox.models.attention import available_attentions, build_attention, register_attention
from yolox.models.darknet import CSPDarknet, Darknet
from yolox.models.losses import IOUloss
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
from yolox.models.yolo_fpn import YOLOFPN
from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import ATTENTION_LEVELS, YOLOPAFPN
from yolox.models.yolox import YOLOX

__all__ = [
    "ATTENTION_LEVELS",
    "BaseConv",
    "Bottleneck",
    "CSPDarknet",
    "CSPLayer",
    "DWConv",
    "Darknet",
    "Focus",
    "IOUloss",
    "ResLayer",
    "SPPBottleneck",
    "YOLOFPN",
    "YOLOPAFPN",
    "YOLOX",
    "YOLOXHead",
    "available_attentions",
    "build_attention",
    "get_activation",
    "init_bn",
    "register_attention",
]
