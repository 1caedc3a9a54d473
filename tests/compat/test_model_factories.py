"""The official model factories and torch.hub entry points: layouts, eval mode, local weights only."""

import json
from pathlib import Path

import pytest
import torch

from yolox.models import create_yolox_model, yolox_custom, yolox_nano, yolox_s
from yolox.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub_dir(tmp_path):
    """A private torch hub cache folder for the test."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_yolox_s_has_the_official_layout_in_eval_mode(reference_dir):
    reference = json.loads((reference_dir / "yolox_state_dicts.json").read_text())["yolox-s"]
    model = yolox_s(pretrained=False)
    assert not model.training and next(model.parameters()).device.type in ("cpu", "cuda")
    assert [[key, list(value.shape)] for key, value in model.state_dict().items()] == reference["state_dict"]


def test_pretrained_without_a_local_file_says_where_to_put_it(hub_dir):
    with pytest.raises(UserError) as err:
        yolox_s(pretrained=True)
    message = str(err.value)
    assert str(hub_dir / "checkpoints" / "yolox_s.pth") in message and "yolox_s.pth" in message
    # what the message suggests works: the factory it names takes ckpt_path (a missing file is its own error)
    suggestion = message.split("with ", 1)[1].split(")", 1)[0] + ")"
    assert suggestion == "create_yolox_model('yolox-s', ckpt_path=<file>)"
    with pytest.raises(UserError, match="checkpoint .*missing.pth not found"):
        create_yolox_model("yolox-s", ckpt_path=str(hub_dir / "missing.pth"))
    with pytest.raises(UserError, match="not found"):
        create_yolox_model("yolox-nano", pretrained=True, ckpt_path=str(hub_dir / "missing.pth"))


def test_pretrained_loads_the_hub_cache_file_and_adapts_classes_and_attention(hub_dir):
    source = yolox_nano(pretrained=False, device="cpu")
    with torch.no_grad():
        for param in source.parameters():
            param.add_(0.5)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save({"model": source.state_dict(), "start_epoch": 300}, hub_dir / "checkpoints" / "yolox_nano.pth")
    loaded = yolox_nano(pretrained=True, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))
    narrow = yolox_nano(pretrained=True, num_classes=3, device="cpu")
    assert narrow.head.cls_preds[0].out_channels == 3
    assert torch.equal(narrow.backbone.backbone.stem.conv.conv.weight, source.backbone.backbone.stem.conv.conv.weight)
    with_attention = create_yolox_model("yolox-nano", pretrained=True, device="cpu", attention="se")
    new_keys = set(with_attention.state_dict()) - set(source.state_dict())
    assert new_keys and all("attn" in key for key in new_keys)


def test_yolox_custom_builds_an_exp_file_with_its_checkpoint(tmp_path):
    exp_file = tmp_path / "my_exp.py"
    exp_file.write_text(
        "from yolox.exp import Exp as MyExp\n\n\n"
        "class Exp(MyExp):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.depth, self.width, self.num_classes = 0.33, 0.125, 2\n"
    )
    model = yolox_custom(exp_path=str(exp_file), device="cpu")
    assert model.head.cls_preds[0].out_channels == 2 and not model.training
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    again = yolox_custom(ckpt_path=str(ckpt), exp_path=str(exp_file), device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    with pytest.raises(UserError, match="exp_path"):
        yolox_custom(exp_path=str(tmp_path / "absent.py"))


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(UserError, match="yolox-nano"):
        create_yolox_model("yolox-q", pretrained=False)


def test_torch_hub_loads_from_the_local_checkout():
    model = torch.hub.load(str(REPO_ROOT), "yolox_nano", source="local", pretrained=False, num_classes=2,
                           device="cpu")
    assert model.head.cls_preds[0].out_channels == 2 and not model.training
