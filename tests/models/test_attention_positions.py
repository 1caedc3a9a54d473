"""Attention positions (backbone / neck / both): level names, weight prefixes, loading, ONNX, paired builds."""

import io
import warnings

import pytest
import torch

from yolox.models import (
    NECK_LEVELS,
    YOLOPAFPN,
    YOLOX,
    YOLOXHead,
    attention_levels_for,
    available_attentions,
    resolve_attention_levels,
)
from yolox.utils.errors import UserError

PREFIXES = {"backbone": "backbone.attn.", "neck": "backbone.neck_attn."}


def narrow_yolox(attention=None, position="backbone", levels=None, init="paper", seed=0) -> YOLOX:
    """A narrow 2-class YOLOX built under ``seed``, optionally with attention."""
    torch.manual_seed(seed)
    neck = YOLOPAFPN(0.33, 0.125, attention=attention, attention_levels=levels, attention_init=init,
                     attention_position=position)
    return YOLOX(neck, YOLOXHead(2, width=0.125))


def attention_keys(model_or_state: YOLOX | dict) -> set:
    """The state-dict keys under an attention prefix."""
    state = model_or_state if isinstance(model_or_state, dict) else model_or_state.state_dict()
    return {key for key in state if key.startswith(tuple(PREFIXES.values()))}


@pytest.mark.parametrize("position, levels", [
    ("backbone", ("dark3", "dark4", "dark5")),
    ("neck", ("pan3", "pan4", "pan5")),
    ("both", ("dark3", "dark4", "dark5", "pan3", "pan4", "pan5")),
])
def test_default_levels_follow_the_position_and_live_under_their_prefix(position, levels):
    assert attention_levels_for(position) == levels
    model = narrow_yolox("se", position)
    assert model.backbone.attention_levels == levels
    found = {(key.split(".")[1], key.split(".")[2]) for key in attention_keys(model)}
    expected = {("attn" if level.startswith("dark") else "neck_attn", level) for level in levels}
    assert found == expected


def test_a_subset_of_levels_and_case_insensitive_names():
    model = narrow_yolox("SE", "Both", ("PAN5", "dark3", "pan5"))
    assert model.backbone.attention == "se" and model.backbone.attention_position == "both"
    assert model.backbone.attention_levels == ("dark3", "pan5")
    assert {key.split(".")[2] for key in attention_keys(model)} == {"dark3", "pan5"}


@pytest.mark.parametrize("position, levels, message", [
    ("backbone", ("pan3",), "'pan3' is not available at position 'backbone'.*dark3, dark4, dark5"),
    ("neck", ("dark5",), "'dark5' is not available at position 'neck'.*pan3, pan4, pan5"),
    ("neck", (), "no attention level is available"),
    ("middle", None, "position 'middle' is unknown.*backbone, neck, both"),
])
def test_bad_levels_or_position_are_named(position, levels, message):
    with pytest.raises(UserError, match=message):
        resolve_attention_levels(position, levels)
    with pytest.raises(UserError, match=message):
        YOLOPAFPN(0.33, 0.125, attention="se", attention_levels=levels, attention_position=position)


def test_levels_come_from_the_backbone():
    assert attention_levels_for("both", ("c3", "c4", "c5")) == ("c3", "c4", "c5") + NECK_LEVELS
    assert resolve_attention_levels("backbone", "C4", ("c3", "c4", "c5")) == ("c4",)


@pytest.mark.parametrize("position", ["backbone", "neck", "both"])
def test_attention_free_checkpoint_loads_with_only_the_attention_tensors_new(position, randomize_batchnorm):
    plain = narrow_yolox()
    randomize_batchnorm(plain)
    plain.eval()
    model = narrow_yolox("cbam", position, init="identity").eval()
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert set(result.missing_keys) == attention_keys(model) and result.unexpected_keys == []
    # Identity init: the model with attention reproduces the attention-free model exactly.
    images = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        assert torch.equal(model(images), plain(images))


@pytest.mark.parametrize("position", ["backbone", "neck", "both"])
@pytest.mark.parametrize("name", available_attentions())
def test_one_seed_gives_the_same_non_attention_weights_for_every_block(name, position):
    plain = narrow_yolox().state_dict()
    with_attention = narrow_yolox(name, position).state_dict()
    non_attention = {key: value for key, value in with_attention.items() if key not in attention_keys(with_attention)}
    assert non_attention.keys() == plain.keys()
    differing = [key for key in plain if not torch.equal(plain[key], non_attention[key])]
    assert differing == []


def test_blocks_of_both_positions_get_their_own_weights_and_one_seed_repeats_them():
    # All blocks are built in one forked stream: dark3 and pan3 (same width) must not share numbers.
    model = narrow_yolox("se", "both")
    dark3, pan3 = model.backbone.attn["dark3"], model.backbone.neck_attn["pan3"]
    assert not torch.equal(dark3.fc_reduce.weight, pan3.fc_reduce.weight)
    again = narrow_yolox("se", "both").state_dict()
    assert all(torch.equal(value, again[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize("position", ["neck", "both"])
def test_onnx_export_with_dynamic_height_and_width(position, randomize_batchnorm):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    model = narrow_yolox("soca", position).eval()
    randomize_batchnorm(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.rand(1, 3, 64, 64) * 255,), buffer, dynamo=False, input_names=["images"],
                          output_names=["output"], opset_version=17,
                          dynamic_axes={"images": {2: "height", 3: "width"}, "output": {1: "anchors"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for height, width in [(64, 96), (96, 64)]:
        images = torch.rand(1, 3, height, width) * 255
        (output,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = model(images)
        assert output.shape == tuple(expected.shape)
        assert torch.allclose(torch.from_numpy(output), expected, atol=1e-3, rtol=1e-4), (height, width)


def test_a_model_with_attention_builds_on_the_meta_device():
    with torch.device("meta"):
        model = YOLOX(YOLOPAFPN(0.33, 0.125, attention="soca", attention_position="both"), YOLOXHead(2, width=0.125))
    assert len(attention_keys(model)) > 0 and all(value.is_meta for value in model.state_dict().values())
