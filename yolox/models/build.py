"""Model factories with the official names: ``yolox_s(pretrained=..., num_classes=..., device=...)`` and friends.

The models come from the default exps, so a factory builds exactly what ``-n yolox-s`` trains. This module
sits above the exp layer: ``yolox.models`` exposes it lazily, so importing the model package never imports
``yolox.exp``. Weights are never downloaded: ``pretrained=True`` reads a local file (``ckpt_path``) or the
file the official release would have left in the torch hub cache, and otherwise says where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from loguru import logger
from torch import nn

from yolox.exp.build import DEFAULT_EXPS, default_exp_key
from yolox.utils.errors import UserError

# Default exp name -> the file name of the official release's weights: the exp's module name, but for YOLOv3.
PRETRAINED_FILES = {name: "yolox_darknet.pth" if name == "yolov3" else f"{module}.pth"
                    for name, module in DEFAULT_EXPS.items()}
PRETRAINED_CLASSES = 80


def hub_checkpoint_path(name: str) -> Path:
    """Where ``torch.hub`` keeps the official weights of ``name``: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PRETRAINED_FILES[name]


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device; None means CUDA when present, else the CPU."""
    from yolox.utils.device import resolve_device

    return resolve_device("auto") if device is None else torch.device(device)


def _load_weights(model: nn.Module, ckpt_file: Path, strict: bool) -> None:
    """Load a checkpoint (official layout or a bare state dict): strictly, or tensor by tensor with a summary."""
    from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt

    ckpt = load_checkpoint_file(ckpt_file)
    if strict:
        state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(f"checkpoint {ckpt_file} does not fit this model ({str(err).splitlines()[0]}): "
                            "check that it belongs to the same model name") from None
    else:
        load_ckpt(model, ckpt)


def create_yolox_model(name: str, pretrained: bool = True, num_classes: int = 80,
                       device: str | torch.device | None = None, exp_path: str | None = None,
                       ckpt_path: str | None = None, attention: str | None = None) -> nn.Module:
    """Build the model of a default exp (``"yolox-s"``, ...) or of ``exp_path``, in eval mode on ``device``.

    ``pretrained=True`` loads ``ckpt_path``, or for a default model the official file found in the torch hub
    cache; a missing file is a UserError naming where to put it. With ``num_classes`` other than 80 or an
    ``attention`` block, the matching tensors load and the new ones (class outputs, attention) stay initialised.
    """
    from yolox.exp import get_exp

    key = default_exp_key(name) if name else name
    if exp_path is None and key not in PRETRAINED_FILES:
        raise UserError(f"unknown model name {name!r}: use one of {', '.join(PRETRAINED_FILES)} or pass exp_path")
    exp = get_exp(exp_path, None if exp_path else key)
    exp.num_classes = int(num_classes)
    if attention is not None:
        exp.attention = attention
    model = exp.get_model()
    if pretrained:
        if ckpt_path is not None:
            ckpt_file = Path(ckpt_path)
        elif exp_path is None:
            ckpt_file = hub_checkpoint_path(key)
        else:
            raise UserError(f"pretrained=True with exp_path={exp_path!r} needs ckpt_path, the weights to load")
        if not ckpt_file.is_file() and ckpt_path is None:
            raise UserError(f"pretrained weights for {name} not found: download {PRETRAINED_FILES[key]} from the "
                            f"official YOLOX release page and put it at {ckpt_file} (or load a file kept elsewhere "
                            f"with create_yolox_model({key!r}, ckpt_path=<file>), or pass pretrained=False)")
        if not ckpt_file.is_file():
            raise UserError(f"checkpoint {ckpt_file} not found: check ckpt_path (or pass pretrained=False)")
        exact_fit = num_classes == PRETRAINED_CLASSES and attention is None
        _load_weights(model, ckpt_file, strict=exact_fit or exp_path is not None)
        logger.info(f"{name}: weights loaded from {ckpt_file}")
    return model.to(_resolve_device(device)).eval()


def yolox_nano(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
               attention: str | None = None) -> nn.Module:
    """YOLOX-Nano (depth 0.33, width 0.25, depthwise), in eval mode."""
    return create_yolox_model("yolox-nano", pretrained, num_classes, device, attention=attention)


def yolox_tiny(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
               attention: str | None = None) -> nn.Module:
    """YOLOX-Tiny (depth 0.33, width 0.375), in eval mode."""
    return create_yolox_model("yolox-tiny", pretrained, num_classes, device, attention=attention)


def yolox_s(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
            attention: str | None = None) -> nn.Module:
    """YOLOX-S (depth 0.33, width 0.50), in eval mode."""
    return create_yolox_model("yolox-s", pretrained, num_classes, device, attention=attention)


def yolox_m(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
            attention: str | None = None) -> nn.Module:
    """YOLOX-M (depth 0.67, width 0.75), in eval mode."""
    return create_yolox_model("yolox-m", pretrained, num_classes, device, attention=attention)


def yolox_l(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
            attention: str | None = None) -> nn.Module:
    """YOLOX-L (depth 1.0, width 1.0), in eval mode."""
    return create_yolox_model("yolox-l", pretrained, num_classes, device, attention=attention)


def yolox_x(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None,
            attention: str | None = None) -> nn.Module:
    """YOLOX-X (depth 1.33, width 1.25), in eval mode."""
    return create_yolox_model("yolox-x", pretrained, num_classes, device, attention=attention)


def yolov3(pretrained: bool = True, num_classes: int = 80, device: str | torch.device | None = None) -> nn.Module:
    """YOLOX-Darknet53 (YOLOv3 backbone and FPN with the decoupled head), in eval mode; it takes no attention."""
    return create_yolox_model("yolov3", pretrained, num_classes, device)


def yolox_custom(ckpt_path: str | None = None, exp_path: str | None = None,
                 device: str | torch.device | None = None) -> nn.Module:
    """The model of the exp file ``exp_path`` with the weights of ``ckpt_path`` when given, in eval mode."""
    if exp_path is None or not os.path.isfile(exp_path):
        raise UserError(f"yolox_custom needs exp_path, an existing exp file (got {exp_path!r})")
    from yolox.exp import get_exp

    num_classes = get_exp(exp_path, None).num_classes
    return create_yolox_model("custom", pretrained=ckpt_path is not None, num_classes=num_classes, device=device,
                              exp_path=exp_path, ckpt_path=ckpt_path)
