"""Every registered block under a whole-model cast (``.half()``, ``.bfloat16()``, ``.double()``) and autocast.

The demo's ``--fp16`` and the GPU eval benchmark's half mode cast the whole model, blocks included; a block
must then compute in (or hand back) the dtype of its parameters, not a float32 of its own.
"""

import pytest
import torch
from torch import nn

from yolox.models.attention import SOCA, available_attentions, build_attention
from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import YOLOPAFPN
from yolox.models.yolox import YOLOX

CHANNELS = 16
# Loose bounds against the float32 output: each cast only has to run and stay close, not match bit for bit.
TOLERANCE = {torch.float16: 0.02, torch.bfloat16: 0.1, torch.float64: 1e-5}


def cpu_runs_half() -> bool:
    """Whether this CPU build has float16 convolutions (recent torch builds do)."""
    try:
        nn.Conv2d(2, 2, 3, padding=1).half()(torch.zeros(1, 2, 4, 4, dtype=torch.float16))
    except RuntimeError:
        return False
    return True


CAST_DTYPES = [
    pytest.param(torch.float16, id="half", marks=pytest.mark.skipif(not cpu_runs_half(),
                                                                     reason="this CPU build has no float16 conv")),
    pytest.param(torch.bfloat16, id="bfloat16"),
    pytest.param(torch.float64, id="double"),
]


@pytest.mark.parametrize("dtype", CAST_DTYPES)
@pytest.mark.parametrize("init", ["paper", "identity"])
@pytest.mark.parametrize("name", available_attentions())
def test_every_block_runs_after_a_whole_model_cast(name, init, dtype):
    torch.manual_seed(0)
    block = build_attention(name, CHANNELS, init=init).eval()
    if init == "identity":
        with torch.no_grad():
            block.scale.fill_(0.5)  # exercise the wrapped block, not just the identity path
    x = torch.randn(2, CHANNELS, 5, 9)
    with torch.no_grad():
        reference = block(x)
        output = block.to(dtype)(x.to(dtype))
    assert output.shape == x.shape and output.dtype == dtype
    assert torch.isfinite(output).all()
    assert torch.allclose(output.double(), reference.double(), atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", CAST_DTYPES)
def test_a_soca_detector_runs_after_a_whole_model_cast(dtype):
    """The path of the demo's --fp16: the whole detector cast, then fed images of that dtype."""
    torch.manual_seed(0)
    width = 0.125
    model = YOLOX(YOLOPAFPN(0.33, width, attention="soca"), YOLOXHead(2, width)).eval()
    images = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        output = model.to(dtype)(images.to(dtype))
    assert output.dtype == dtype and torch.isfinite(output).all()


def test_soca_in_float32_is_bitwise_the_formula_it_always_computed():
    """The cast to the gate's dtype is a no-op in float32: the output equals the float32 formula exactly."""
    torch.manual_seed(0)
    block = SOCA(32).eval()
    x = torch.randn(2, 32, 40, 24)
    with torch.no_grad():
        statistics = block.channel_statistics(x)[:, :, None, None]
        gate = torch.sigmoid(block.conv_expand(block.relu(block.conv_reduce(statistics))))
        assert torch.equal(block(x), x * gate)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = block(x.bfloat16())
        statistics = block.channel_statistics(x.bfloat16())[:, :, None, None]
        gate = torch.sigmoid(block.conv_expand(block.relu(block.conv_reduce(statistics))))
        assert torch.equal(under_autocast, x.bfloat16() * gate.bfloat16())
