"""Read what a model's attention blocks do, through forward hooks that never change their outputs.

Every block in this project gates its input multiplicatively (``out = x * gate``), so the *effective gate*
``out / x`` is exactly the factor the block applied to each element: for SE, ECA and SOCA one value per
channel, for CAM the product of its row and column gates, for CBAM its channel gate times its spatial gate,
for SimAM and EMA their maps. CBAM's spatial gate is also read on its own (the sigmoid of ``spatial_conv``).
The identity-init wrapper's ``scale`` tells how much of the block's output the model uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolox.models.attention import (
    ResidualScaledAttention,
    attention_block_types,
    has_channel_gate,
    registered_attention_name,
)

# Inputs this close to 0 carry no information about the gate (0 * g = 0).
MIN_INPUT_MAGNITUDE = 1e-6
# A registered block is a channel block when its class says so (``channel_gate``); another block counts as
# one when its gate is flat (varies less than FLAT_GATE_TOLERANCE over H x W) in every channel.
FLAT_GATE_TOLERANCE = 1e-3


def find_attention_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The outermost attention blocks of ``model`` by short name (``attn.dark3`` for ``backbone.attn.dark3``)."""
    block_types = attention_block_types()
    blocks: dict[str, nn.Module] = {}
    taken: list[str] = []
    for name, module in model.named_modules():
        if not name or not isinstance(module, block_types):
            continue
        if any(name.startswith(prefix + ".") for prefix in taken):
            continue  # the block inside an identity wrapper, or a block nested in another
        taken.append(name)
        blocks[name.removeprefix("backbone.")] = module
    return blocks


def effective_gate(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``outputs / inputs`` in float32, NaN where the input is (nearly) zero."""
    inputs, outputs = inputs.float(), outputs.float()
    usable = inputs.abs() > MIN_INPUT_MAGNITUDE
    return torch.where(usable, outputs / torch.where(usable, inputs, torch.ones_like(inputs)),
                       torch.full_like(inputs, float("nan")))


def _nan_std(values: torch.Tensor) -> float:
    """Standard deviation of the non-NaN entries (0 when there are fewer than two)."""
    finite = values[~torch.isnan(values)]
    return float(finite.std()) if finite.numel() > 1 else 0.0


@dataclass
class AttentionMaps:
    """What one block applied to one batch: ``channel`` gates (N, C) and a ``spatial`` map (N, H, W)."""

    channel: torch.Tensor
    spatial: torch.Tensor
    is_channel_block: bool


class AttentionProbe:
    """Keeps the latest input and output of every attention block of ``model`` (detached, no copies).

    ``training_only=True`` records only forward passes in train mode, so evaluation passes leave the
    training statistics alone. Setting ``recording`` to False skips recording altogether: the trainer
    records only the iteration it logs, so the probe keeps no activations alive between other steps.
    :meth:`usage` and :meth:`maps` compute the figures on demand.
    """

    def __init__(self, model: nn.Module, training_only: bool = True) -> None:
        """Hook every attention block of ``model``."""
        self.blocks = find_attention_blocks(model)
        self.training_only = training_only
        self.recording = True
        self._latest: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._spatial_gates: dict[str, torch.Tensor] = {}
        self._handles = []
        for name, block in self.blocks.items():
            inner = block.block if isinstance(block, ResidualScaledAttention) else block
            self._handles.append(inner.register_forward_hook(self._recorder(name)))
            spatial_conv = getattr(inner, "spatial_conv", None)
            if isinstance(spatial_conv, nn.Module):
                self._handles.append(spatial_conv.register_forward_hook(self._spatial_recorder(name)))

    def _wanted(self, module: nn.Module) -> bool:
        return self.recording and (module.training or not self.training_only)

    def _recorder(self, name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if self._wanted(module) and inputs and isinstance(output, torch.Tensor):
                self._latest[name] = (inputs[0].detach(), output.detach())
        return record

    def _spatial_recorder(self, name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if self._wanted(module):
                self._spatial_gates[name] = torch.sigmoid(output.detach().float())[:, 0]
        return record

    def usage(self) -> dict[str, dict[str, float]]:
        """Per block: ``gate_mean`` and ``gate_std`` of its effective gate, and ``scale`` when identity-init."""
        figures = {}
        for name, (inputs, outputs) in self._latest.items():
            gate = effective_gate(inputs, outputs)
            entry = {"gate_mean": float(torch.nanmean(gate)), "gate_std": _nan_std(gate)}
            block = self.blocks[name]
            if isinstance(block, ResidualScaledAttention):
                entry["scale"] = float(block.scale.detach())
            figures[name] = entry
        return figures

    def maps(self) -> dict[str, AttentionMaps]:
        """Per block, the channel gates and the spatial map of the latest recorded batch."""
        result = {}
        for name, (inputs, outputs) in self._latest.items():
            gate = effective_gate(inputs, outputs)
            channel = torch.nanmean(gate.flatten(2), dim=2)
            flat = gate.flatten(2)
            spread = flat.nan_to_num(nan=-float("inf")).amax(dim=2) - flat.nan_to_num(nan=float("inf")).amin(dim=2)
            spatial = self._spatial_gates.get(name)
            if spatial is None:
                spatial = torch.nanmean(gate, dim=1)
            registered = registered_attention_name(self.blocks[name])
            if registered is not None:
                is_channel = has_channel_gate(registered)
            else:
                is_channel = bool((spread <= FLAT_GATE_TOLERANCE * channel.abs().clamp(min=1.0)).all())
            result[name] = AttentionMaps(channel=channel, spatial=spatial, is_channel_block=is_channel)
        return result

    def clear(self) -> None:
        """Forget the recorded tensors (frees their memory)."""
        self._latest.clear()
        self._spatial_gates.clear()

    def close(self) -> None:
        """Remove every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()


def format_usage(usage: dict[str, dict[str, float]]) -> str:
    """One line such as ``attn.dark3 gate 0.52+-0.08 scale 0.031; ...`` for the training log."""
    parts = []
    for name, entry in usage.items():
        text = f"{name} gate {entry['gate_mean']:.3f}+-{entry['gate_std']:.3f}"
        if "scale" in entry:
            text += f" scale {entry['scale']:.4f}"
        parts.append(text)
    return "; ".join(parts)
