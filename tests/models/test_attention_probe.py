"""The attention probe reads each block's gate through hooks without changing what the blocks compute."""

import torch
from torch import nn

from yolox.models.attention import build_attention
from yolox.models.attention_probe import AttentionProbe, find_attention_blocks


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({"cam": build_attention("cam", 16), "se": build_attention("se", 16, init="identity")})


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model["se"](model["cam"](x))


def test_outputs_unchanged_and_se_gate_read_exactly():
    model = _model().eval()
    x = torch.randn(2, 16, 6, 5)
    expected = _forward(model, x)
    probe = AttentionProbe(model, training_only=False)
    assert list(probe.blocks) == ["cam", "se"]  # the SE inside the identity wrapper is not listed twice
    assert torch.equal(_forward(model, x), expected)
    inner = model["se"].block
    cam_out = model["cam"](x)
    gate = torch.sigmoid(inner.fc_expand(inner.relu(inner.fc_reduce(cam_out.mean(dim=(2, 3), keepdim=True)))))
    usage = probe.usage()
    assert usage["se"]["scale"] == 0.0
    assert abs(usage["se"]["gate_mean"] - float(gate.mean())) < 1e-5
    maps = probe.maps()
    assert maps["se"].is_channel_block and not maps["cam"].is_channel_block
    assert torch.allclose(maps["se"].channel, gate.flatten(1), atol=1e-5)
    assert maps["cam"].spatial.shape == (2, 6, 5)
    probe.close()


def test_training_only_ignores_evaluation_passes():
    model = _model()
    probe = AttentionProbe(model)
    model.eval()
    _forward(model, torch.randn(1, 16, 4, 4))
    assert probe.usage() == {}
    model.train()
    _forward(model, torch.randn(2, 16, 4, 4))
    assert set(probe.usage()) == {"cam", "se"}
    probe.close()
    assert find_attention_blocks(nn.Conv2d(3, 3, 1)) == {}


def test_nothing_is_recorded_while_recording_is_off():
    model = _model()
    probe = AttentionProbe(model)
    probe.recording = False
    _forward(model, torch.randn(2, 16, 4, 4))
    assert probe.usage() == {}
    probe.recording = True
    _forward(model, torch.randn(2, 16, 4, 4))
    assert set(probe.usage()) == {"cam", "se"}
    probe.close()
