"""ResNet trunks from torchvision's own classes, returning C3, C4 and C5 for the PAN neck.

The trunk is ``torchvision.models.resnet18 ... resnet152`` built with ``weights=None`` (nothing is ever
downloaded) minus its pooling and classifier, so its state dict has exactly torchvision's keys and an
ImageNet checkpoint saved by torchvision loads into it (:func:`load_resnet_weights`).

Attention can sit inside the residual blocks of chosen stages, at one of the four positions compared in
the SE paper (Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, Fig. 5 and Table 14):

- ``standard``: on the residual branch, after its last BatchNorm and before the addition;
- ``pre``: on the residual branch's input, before its first convolution (the shortcut sees the raw input);
- ``post``: on the block output, after the addition and the final ReLU;
- ``identity``: on the shortcut branch (after the downsampling projection where the block has one).

Each block's attention is stored as ``<stage>.<index>.attention.*``; every other key is torchvision's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn
from torchvision.models import resnet as tv_resnet

from yolox.models.attention import ATTENTION_INIT_MODES, attention_rng, available_attentions, build_attention
from yolox.models.imagenet_input import ImageNetInput
from yolox.models.network_blocks import init_bn
from yolox.utils.checkpoint import load_checkpoint_file
from yolox.utils.errors import UserError
from yolox.utils.model_utils import fuse_conv_and_bn

__all__ = [
    "BLOCK_ATTENTION_POSITIONS",
    "DEFAULT_BLOCK_ATTENTION_STAGES",
    "RESNET_BACKBONES",
    "RESNET_OUT_FEATURES",
    "RESNET_STAGES",
    "AttentiveBasicBlock",
    "AttentiveBottleneck",
    "ResNetTrunk",
    "WeightsLoadReport",
    "add_block_attention",
    "describe_resnet_state_dict",
    "load_resnet_weights",
    "resnet_out_channels",
]

RESNET_BUILDERS: dict[str, Callable[..., tv_resnet.ResNet]] = {
    "resnet18": tv_resnet.resnet18,
    "resnet34": tv_resnet.resnet34,
    "resnet50": tv_resnet.resnet50,
    "resnet101": tv_resnet.resnet101,
    "resnet152": tv_resnet.resnet152,
}
RESNET_BACKBONES = tuple(RESNET_BUILDERS)
# Blocks per stage and the block type of each depth (He et al., "Deep Residual Learning", Table 1).
RESNET_LAYOUTS: dict[str, tuple[tuple[int, int, int, int], bool]] = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
    "resnet152": ((3, 8, 36, 3), True),
}
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
RESNET_OUT_FEATURES = ("c3", "c4", "c5")  # the outputs of layer2, layer3, layer4: strides 8, 16, 32
BLOCK_ATTENTION_POSITIONS = ("standard", "pre", "post", "identity")
DEFAULT_BLOCK_ATTENTION_STAGES = ("layer3", "layer4")
DEFAULT_BLOCK_ATTENTION_POSITION = "standard"
# The exp keys a ResNet backbone reads, with their defaults: the one place these defaults are written.
RESNET_OPTIONS: dict[str, Any] = {
    "backbone_weights": None,  # a local torchvision ImageNet state dict (.pth)
    "freeze_backbone_stages": 0,  # k in 0..4 freezes the stem and layer1..layer k
    "block_attention": None,  # attention inside the residual blocks
    "block_attention_position": DEFAULT_BLOCK_ATTENTION_POSITION,  # standard | pre | post | identity
    "block_attention_stages": DEFAULT_BLOCK_ATTENTION_STAGES,
    "block_attention_kwargs": {},
    "block_attention_init": "paper",
}
STEM_MODULES = ("conv1", "bn1")


def check_resnet_name(name: str) -> str:
    """Return ``name`` if it is a supported ResNet, else raise a UserError listing the valid names."""
    if name not in RESNET_BUILDERS:
        raise UserError(f"unknown ResNet {name!r}; use one of: {', '.join(RESNET_BACKBONES)}")
    return name


def resnet_out_channels(name: str) -> tuple[int, int, int]:
    """Channels of C3, C4, C5: (128, 256, 512) for BasicBlock ResNets, four times that for Bottleneck ones."""
    _, bottleneck = RESNET_LAYOUTS[check_resnet_name(name)]
    expansion = tv_resnet.Bottleneck.expansion if bottleneck else tv_resnet.BasicBlock.expansion
    return (128 * expansion, 256 * expansion, 512 * expansion)


def normalize_block_attention_stages(stages: str | Iterable[str]) -> tuple[str, ...]:
    """Return ``stages`` as a duplicate-free tuple in network order, or raise a UserError naming a bad stage."""
    if isinstance(stages, str):
        stages = (stages,)
    chosen = set()
    for stage in stages:
        if stage not in RESNET_STAGES:
            raise UserError(
                f"block attention stage {stage!r} is unknown; block_attention_stages must be a non-empty "
                f"subset of {', '.join(RESNET_STAGES)}"
            )
        chosen.add(stage)
    if not chosen:
        raise UserError(f"block_attention_stages is empty; choose a subset of {', '.join(RESNET_STAGES)}")
    return tuple(stage for stage in RESNET_STAGES if stage in chosen)


def check_frozen_stages(stages: object) -> int:
    """Return ``stages`` if it is a whole number from 0 to 4, else raise a UserError naming the exp key."""
    if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages <= 4:
        raise UserError(f"freeze_backbone_stages={stages!r}: use a whole number from 0 (none) to 4 (all)")
    return stages


def check_resnet_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The exp's ResNet keys (those of ``RESNET_OPTIONS``) checked, ``block_attention_stages`` in network order.

    Run when the exp is validated, before anything is built; a bad value is a UserError naming the exp key.
    """
    checked = dict(options)
    try:
        check_frozen_stages(checked["freeze_backbone_stages"])
    except UserError as err:
        raise UserError(f"exp key {err}") from None
    if checked["block_attention"] is None:
        return checked
    if checked["block_attention"] not in available_attentions():
        raise UserError(f"exp key block_attention={checked['block_attention']!r} is unknown: use one of "
                        f"{', '.join(available_attentions())} or None")
    if checked["block_attention_init"] not in ATTENTION_INIT_MODES:
        raise UserError(f"exp key block_attention_init={checked['block_attention_init']!r}: use one of "
                        f"{', '.join(ATTENTION_INIT_MODES)}")
    try:
        check_block_attention_position(checked["block_attention_position"])
        checked["block_attention_stages"] = normalize_block_attention_stages(checked["block_attention_stages"])
    except UserError as err:
        raise UserError(f"exp key block_attention_position/block_attention_stages: {err}") from None
    return checked


def finish_resnet_trunk(trunk: nn.Module, options: Mapping[str, Any]) -> None:
    """Give the trunk back torchvision's BatchNorm eps (its ImageNet statistics assume it), load its weights."""
    init_bn(trunk, eps=1e-5, momentum=0.03)
    if options.get("backbone_weights"):
        load_resnet_weights(trunk, options["backbone_weights"])


def check_block_attention_position(position: str) -> str:
    """Return ``position`` if valid, else raise a UserError listing the four positions."""
    if position not in BLOCK_ATTENTION_POSITIONS:
        raise UserError(
            f"block attention position {position!r} is unknown; use one of: {', '.join(BLOCK_ATTENTION_POSITIONS)}"
        )
    return position


class _BlockAttention:
    """The forward pass shared by both attentive block types; ``residual_branch`` is the block's own convs."""

    attention: nn.Module
    attention_position: str
    downsample: nn.Module | None
    relu: nn.Module
    residual_branch: Callable[[torch.Tensor], torch.Tensor]  # the block's convs and BatchNorms before the addition

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's residual computation with the attention inserted at ``attention_position``."""
        position = self.attention_position
        shortcut = x if self.downsample is None else self.downsample(x)
        if position == "identity":
            shortcut = self.attention(shortcut)
        residual = self.residual_branch(self.attention(x) if position == "pre" else x)
        if position == "standard":
            residual = self.attention(residual)
        out = self.relu(residual + shortcut)
        if position == "post":
            out = self.attention(out)
        return out


class AttentiveBasicBlock(_BlockAttention, tv_resnet.BasicBlock):
    """torchvision's BasicBlock (two 3x3 convs) with an attention block at one of four positions."""

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """conv-BN-ReLU, conv-BN: the residual branch of a BasicBlock."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class AttentiveBottleneck(_BlockAttention, tv_resnet.Bottleneck):
    """torchvision's Bottleneck (1x1, 3x3, 1x1 convs) with an attention block at one of four positions."""

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """1x1 reduce, 3x3, 1x1 expand (each with BN, ReLU between): the residual branch of a Bottleneck."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


ATTENTIVE_BLOCK_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    tv_resnet.BasicBlock: AttentiveBasicBlock,
    tv_resnet.Bottleneck: AttentiveBottleneck,
}


def block_attention_channels(block: nn.Module, position: str) -> int:
    """Channels the attention sees at ``position``: the block's input for ``pre``, its output otherwise."""
    if position == "pre":
        return block.conv1.in_channels
    last_norm = block.bn3 if isinstance(block, tv_resnet.Bottleneck) else block.bn2
    return last_norm.num_features


def add_block_attention(block: nn.Module, attention: nn.Module, position: str) -> nn.Module:
    """Turn a torchvision BasicBlock or Bottleneck in place into its attentive version; returns ``block``.

    The block keeps its own modules and weights (so its state-dict keys stay torchvision's and the same
    seed gives the same convolution weights with or without attention); only its class changes, to the
    subclass whose forward pass applies ``attention`` at ``position``.
    """
    check_block_attention_position(position)
    attentive_class = ATTENTIVE_BLOCK_CLASSES.get(type(block))
    if attentive_class is None:
        raise TypeError(
            f"add_block_attention needs a torchvision BasicBlock or Bottleneck, got {type(block).__name__}"
        )
    block.__class__ = attentive_class
    block.attention = attention
    block.attention_position = position
    return block


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without pooling and classifier: BGR 0..255 images in, C3/C4/C5 out.

    The input is converted to what torchvision's ImageNet weights expect (RGB, scaled to 0..1 and
    normalised by the ImageNet mean and std) with non-persistent buffers, so the state dict holds only
    torchvision's keys (plus ``*.attention.*`` where blocks carry attention).
    ``frozen_stages`` k in 0..4 stops gradients to the stem and layer1..layer k and keeps their
    BatchNorms in eval mode; attention blocks inside frozen stages are new tensors and stay trainable.

    Args:
        name: the torchvision ResNet, one of ``RESNET_BACKBONES`` (resnet18 ... resnet152). Default: "resnet50".
        block_attention: registered attention block put inside every residual block of
            ``block_attention_stages``, or None for none. Default: None.
        block_attention_position: where in the residual block: "standard" (on the residual branch before
            the addition), "pre" (on the residual branch's input; the shortcut keeps the raw input), "post"
            (after the addition and ReLU) or "identity" (on the shortcut). Default: "standard".
        block_attention_stages: a non-empty subset of layer1..layer4. Default: layer3, layer4.
        block_attention_kwargs: options passed to every block. Default: None.
        block_attention_init: "paper" or "identity", as for the neck attention. Default: "paper".
        frozen_stages: k in 0..4, see above. Default: 0.
    """

    def __init__(
        self,
        name: str = "resnet50",
        block_attention: str | None = None,
        block_attention_position: str = DEFAULT_BLOCK_ATTENTION_POSITION,
        block_attention_stages: str | Iterable[str] = DEFAULT_BLOCK_ATTENTION_STAGES,
        block_attention_kwargs: Mapping | None = None,
        block_attention_init: str = "paper",
        frozen_stages: int = 0,
    ) -> None:
        """Build ``name`` (resnet18 ... resnet152) with random weights and the optional in-block attention."""
        super().__init__()
        self.name = check_resnet_name(name)
        check_frozen_stages(frozen_stages)
        network = RESNET_BUILDERS[self.name](weights=None)
        self.conv1 = network.conv1
        self.bn1 = network.bn1
        self.relu = network.relu
        self.maxpool = network.maxpool
        self.layer1 = network.layer1
        self.layer2 = network.layer2
        self.layer3 = network.layer3
        self.layer4 = network.layer4
        self.out_features = RESNET_OUT_FEATURES
        self.out_channels = resnet_out_channels(self.name)
        self.out_strides = (8, 16, 32)
        self.imagenet_input = ImageNetInput()

        self.block_attention = block_attention
        self.block_attention_position = check_block_attention_position(block_attention_position)
        self.block_attention_stages = (
            normalize_block_attention_stages(block_attention_stages) if block_attention is not None else ()
        )
        if block_attention is not None:
            # Built under a forked RNG: the same seed gives the same non-attention weights whatever the attention.
            with attention_rng():
                for stage in self.block_attention_stages:
                    for block in getattr(self, stage):
                        channels = block_attention_channels(block, self.block_attention_position)
                        attention = build_attention(
                            block_attention, channels, init=block_attention_init, **dict(block_attention_kwargs or {})
                        )
                        add_block_attention(block, attention, self.block_attention_position)

        self.frozen_stages = frozen_stages
        for module in self.frozen_modules():
            for parameter_name, parameter in module.named_parameters():
                if not _is_attention_name(parameter_name):
                    parameter.requires_grad_(False)
        self.train()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> ResNetTrunk:
        """The trunk ``name`` with the exp's ResNet keys (``RESNET_OPTIONS``) as its settings."""
        return cls(
            name, block_attention=options["block_attention"],
            block_attention_position=options["block_attention_position"],
            block_attention_stages=options["block_attention_stages"],
            block_attention_kwargs=dict(options["block_attention_kwargs"]),
            block_attention_init=options["block_attention_init"], frozen_stages=options["freeze_backbone_stages"],
        )

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the first ``frozen_stages`` stages (empty when nothing is frozen)."""
        if self.frozen_stages == 0:
            return []
        names = STEM_MODULES + RESNET_STAGES[: self.frozen_stages]
        return [getattr(self, name) for name in names]

    def train(self, mode: bool = True) -> ResNetTrunk:
        """Set the training mode, keeping the BatchNorms of frozen stages (not their attention) in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            for module_name, submodule in module.named_modules():
                if isinstance(submodule, nn.modules.batchnorm._BatchNorm) and not _is_attention_name(module_name):
                    submodule.eval()
        return self

    def fold_batchnorm(self) -> None:
        """Fold every trunk BatchNorm into the conv before it (inference only; ``fuse_model`` calls this).

        The stem, each block's conv/BN pairs and each downsample shortcut are folded with their running
        statistics and the BatchNorm becomes an identity, so torchvision's forward stays as it is. The
        attention blocks inside the residual blocks keep their own layers.
        """
        pairs: list[tuple[nn.Module, str, str]] = [(self, "conv1", "bn1")]
        for stage in RESNET_STAGES:
            for block in getattr(self, stage):
                pairs += [(block, f"conv{index}", f"bn{index}") for index in (1, 2, 3) if hasattr(block, f"bn{index}")]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for owner, conv_name, norm_name in pairs:
            norm = getattr(owner, norm_name)
            if isinstance(norm, nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_and_bn(getattr(owner, conv_name), norm))
                setattr(owner, norm_name, nn.Identity())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"c3", "c4", "c5"}``: the outputs of layer2, layer3 and layer4 (strides 8, 16, 32).

        Args:
            images: ``[B, 3, H, W]`` float BGR images in 0..255.

        Returns:
            ``{"c3": [B, c, H / 8, W / 8], "c4": [B, 2c, H / 16, W / 16], "c5": [B, 4c, H / 32, W / 32]}``
            (sides rounded up), c = 128 for resnet18/34 and 512 for resnet50 and deeper (``out_channels``).
        """
        x = self.imagenet_input(images)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {"c3": c3, "c4": c4, "c5": c5}


def _is_attention_name(name: str) -> bool:
    """True for a parameter or module path inside an in-block attention (``*.attention.*``)."""
    return ".attention." in f".{name}."


def describe_resnet_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the ResNet a torchvision-style state dict holds (``"resnet50"``), or describe its layout."""
    bottleneck = "layer1.0.conv3.weight" in state_dict
    blocks = []
    for stage in RESNET_STAGES:
        indices = {key.split(".")[1] for key in state_dict if key.startswith(f"{stage}.")}
        blocks.append(len(indices))
    for name, (layout, uses_bottleneck) in RESNET_LAYOUTS.items():
        if tuple(blocks) == layout and bottleneck == uses_bottleneck:
            return name
    if not any(blocks):
        return "no ResNet stages (keys layer1..layer4 are absent)"
    kind = "Bottleneck" if bottleneck else "BasicBlock"
    return f"an unknown ResNet layout ({kind}, blocks per stage {tuple(blocks)})"


@dataclass(frozen=True)
class WeightsLoadReport:
    """What :func:`load_resnet_weights` did: tensors loaded, trunk tensors left new, file tensors ignored."""

    path: str
    loaded: int
    new: tuple[str, ...]
    ignored: tuple[str, ...]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict (plain, or under a ``state_dict``/``model`` key) from ``path``."""
    try:
        content = load_checkpoint_file(path)
    except UserError as err:
        raise UserError(f"backbone_weights {path}: cannot be read as a torch state dict ({err})") from None
    for wrapper_key in ("state_dict", "model"):
        if isinstance(content, Mapping) and isinstance(content.get(wrapper_key), Mapping):
            content = content[wrapper_key]
    if not isinstance(content, Mapping) or not all(isinstance(value, torch.Tensor) for value in content.values()):
        raise UserError(f"backbone_weights {path}: holds no state dict of tensors; give a torchvision ResNet .pth file")
    return dict(content)


def load_resnet_weights(trunk: ResNetTrunk, path: str | Path) -> WeightsLoadReport:
    """Load a torchvision ResNet state dict (an ImageNet ``.pth``) from a local file into ``trunk``.

    Every torchvision tensor of the trunk must be in the file with its shape; the classifier (``fc.*``)
    is ignored and in-block attention tensors are reported as new. A missing file or one that holds
    another architecture raises a UserError naming the path, the expected ResNet and the file's.
    """
    path = Path(path).expanduser()
    expected_name = trunk.name
    if not path.is_file():
        raise UserError(
            f"backbone_weights {path}: no such file; give a local torchvision {expected_name} state dict "
            f"(ImageNet weights are never downloaded at run time) or set backbone_weights None"
        )
    file_state = _read_state_dict(path)
    trunk_state = trunk.state_dict()
    torchvision_keys = [key for key in trunk_state if not _is_attention_name(key)]
    missing = [key for key in torchvision_keys if key not in file_state]
    mismatched = [
        f"{key} {tuple(file_state[key].shape)} vs {tuple(trunk_state[key].shape)}"
        for key in torchvision_keys
        if key in file_state and file_state[key].shape != trunk_state[key].shape
    ]
    ignored = tuple(sorted(key for key in file_state if key not in trunk_state))
    unexpected = [key for key in ignored if not key.startswith("fc.")]
    if missing or mismatched or unexpected:
        problems = []
        if missing:
            problems.append(f"{len(missing)} trunk tensors missing (e.g. {missing[0]})")
        if mismatched:
            problems.append(f"{len(mismatched)} with other shapes (e.g. {mismatched[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unknown tensors (e.g. {unexpected[0]})")
        raise UserError(
            f"backbone_weights {path}: expected a torchvision {expected_name} state dict, but the file holds "
            f"{describe_resnet_state_dict(file_state)} ({'; '.join(problems)}); pass weights of {expected_name} "
            f"or set backbone to the file's architecture"
        )
    with torch.no_grad():
        for key in torchvision_keys:
            trunk_state[key].copy_(file_state[key])
    new = tuple(key for key in trunk_state if _is_attention_name(key))
    report = WeightsLoadReport(path=str(path), loaded=len(torchvision_keys), new=new, ignored=ignored)
    logger.info(
        f"backbone weights {path}: loaded {report.loaded} tensors of {expected_name}; "
        f"{len(new)} new (attention){': ' + ', '.join(new[:4]) + (' ...' if len(new) > 4 else '') if new else ''}; "
        f"ignored {len(ignored)} ({', '.join(ignored) or 'none'})"
    )
    return report
