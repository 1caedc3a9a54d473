"""The one checkpoint reader: the same messages for a missing, corrupt or mismatching checkpoint everywhere."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from yolox.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file, load_exact_weights
from yolox.utils.errors import UserError


def tiny_detector(num_classes: int, attention: bool = False) -> nn.Module:
    """A module whose names follow the YOLOX layout the reader inspects: a head and optional neck attention."""
    model = nn.Module()
    model.head = nn.Module()
    model.head.cls_preds = nn.ModuleList([nn.Conv2d(4, num_classes, 1)])
    if attention:
        model.backbone = nn.Module()
        model.backbone.attn = nn.ModuleDict({"dark3": nn.Conv2d(4, 4, 1)})
    return model


def tiny_exp(num_classes: int = 3, attention: str | None = None, meta_error: str | None = None) -> SimpleNamespace:
    """An exp-like object with the members the reader uses."""

    def check_meta(meta, ckpt_path):
        if meta_error and meta:
            raise UserError(f"checkpoint {ckpt_path}: {meta_error}")

    return SimpleNamespace(exp_name="tiny", num_classes=num_classes, attention=attention, check_meta=check_meta)


def test_official_layout_and_bare_state_dict_load_exactly(tmp_path: Path) -> None:
    source = tiny_detector(3)
    official, bare = tmp_path / "official.pth", tmp_path / "bare.pth"
    torch.save({"model": source.state_dict(), "meta": {"num_classes": 3}}, official)
    torch.save(source.state_dict(), bare)
    for path, expected_meta in ((official, {"num_classes": 3}), (bare, {})):
        target = tiny_detector(3)
        assert load_exact_weights(target, path, tiny_exp()) == expected_meta
        assert torch.equal(target.head.cls_preds[0].weight, source.head.cls_preds[0].weight)
    assert set(checkpoint_state_dict(load_checkpoint_file(official))) == set(source.state_dict())


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist: check the -c/--ckpt path"):
        load_exact_weights(tiny_detector(3), tmp_path / "missing.pth", tiny_exp())
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 not a torch file")
    with pytest.raises(UserError, match="cannot read checkpoint .*corrupt.pth"):
        load_exact_weights(tiny_detector(3), corrupt, tiny_exp())


def test_model_mismatch_names_classes_and_attention(tmp_path: Path) -> None:
    path = tmp_path / "five_classes_with_attention.pth"
    torch.save({"model": tiny_detector(5, attention=True).state_dict()}, path)
    target = tiny_detector(3)
    before = target.head.cls_preds[0].weight.clone()
    with pytest.raises(UserError) as caught:
        load_exact_weights(target, path, tiny_exp(3))
    message = str(caught.value)
    assert "num_classes=5 and attention weights" in message and "num_classes=3 and attention=None" in message
    assert "2 reshaped" in message and "-f exps/" in message
    assert torch.equal(target.head.cls_preds[0].weight, before)  # nothing was half-loaded


def test_recorded_settings_are_checked_first(tmp_path: Path) -> None:
    path = tmp_path / "other_exp.pth"
    torch.save({"model": tiny_detector(3).state_dict(), "meta": {"attention": "se"}}, path)
    with pytest.raises(UserError, match="trained with se"):
        load_exact_weights(tiny_detector(3), path, tiny_exp(meta_error="trained with se"))


def test_in_block_attention_of_a_resnet_counts_as_attention(tmp_path: Path) -> None:
    """A ResNet checkpoint with attention inside its residual blocks (``*.attention.*``) is no 'no attention' one."""
    path = tmp_path / "resnet_block_attention.pth"
    state = tiny_detector(3).state_dict()
    state["backbone.backbone.layer3.0.attention.conv_reduce.weight"] = torch.zeros(2, 4, 1, 1)
    torch.save({"model": state}, path)
    with pytest.raises(UserError, match="num_classes=3 and attention weights"):
        load_exact_weights(tiny_detector(3), path, tiny_exp(3))
