"""ResNet trunks: torchvision keys, C3/C4/C5 shapes, in-block attention positions, weights, freezing."""

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import resnet as tv_resnet

from yolox.models.resnet import (
    BLOCK_ATTENTION_POSITIONS,
    RESNET_BACKBONES,
    AttentiveBasicBlock,
    AttentiveBottleneck,
    ResNetTrunk,
    add_block_attention,
    describe_resnet_state_dict,
    load_resnet_weights,
    resnet_out_channels,
)
from yolox.utils.errors import UserError

EXPECTED_CHANNELS = {
    "resnet18": (128, 256, 512),
    "resnet34": (128, 256, 512),
    "resnet50": (512, 1024, 2048),
    "resnet101": (512, 1024, 2048),
    "resnet152": (512, 1024, 2048),
}


@pytest.mark.parametrize("name", RESNET_BACKBONES)
def test_outputs_have_the_channels_and_strides_of_c3_c4_c5(name: str) -> None:
    """Shape-only check on the meta device, so the deep trunks cost no compute."""
    with torch.device("meta"):
        trunk = ResNetTrunk(name)
        outputs = trunk(torch.zeros(2, 3, 96, 160))
    assert resnet_out_channels(name) == EXPECTED_CHANNELS[name] == trunk.out_channels
    assert list(outputs) == ["c3", "c4", "c5"]
    for (level, tensor), channels, stride in zip(outputs.items(), EXPECTED_CHANNELS[name], (8, 16, 32)):
        assert tuple(tensor.shape) == (2, channels, 96 // stride, 160 // stride), level


def test_resnet18_runs_on_real_tensors_with_odd_sizes() -> None:
    trunk = ResNetTrunk("resnet18", block_attention="se", block_attention_stages=("layer1", "layer4")).eval()
    outputs = trunk(torch.rand(1, 3, 64, 96) * 255)
    assert [tuple(t.shape) for t in outputs.values()] == [(1, 128, 8, 12), (1, 256, 4, 6), (1, 512, 2, 3)]
    assert all(torch.isfinite(t).all() for t in outputs.values())


@pytest.mark.parametrize("name", RESNET_BACKBONES)
def test_trunk_state_dict_is_torchvisions_without_classifier(name: str) -> None:
    with torch.device("meta"):
        trunk = ResNetTrunk(name)
        reference = getattr(torchvision.models, name)(weights=None)
    expected = [(key, tuple(t.shape)) for key, t in reference.state_dict().items() if not key.startswith("fc.")]
    assert [(key, tuple(t.shape)) for key, t in trunk.state_dict().items()] == expected


def test_same_seed_gives_same_trunk_weights_with_or_without_block_attention() -> None:
    torch.manual_seed(3)
    plain = ResNetTrunk("resnet18")
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    attentive = ResNetTrunk("resnet18", block_attention="cam", block_attention_stages=("layer2", "layer3"))
    after_attentive = torch.rand(1)
    attentive_state = attentive.state_dict()
    for key, tensor in plain.state_dict().items():
        assert torch.equal(tensor, attentive_state[key]), key
    assert torch.equal(after_plain, after_attentive)  # building attention leaves the global RNG where it was
    assert any(".attention." in key for key in attentive_state)


def test_only_chosen_stages_get_attention_with_the_right_channels() -> None:
    trunk = ResNetTrunk("resnet50", block_attention="se", block_attention_stages=("layer4", "layer2"),
                        block_attention_position="pre")
    assert trunk.block_attention_stages == ("layer2", "layer4")
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for index, block in enumerate(getattr(trunk, stage)):
            if stage in ("layer2", "layer4"):
                assert isinstance(block, AttentiveBottleneck)
                # "pre" sees the block input: the previous stage's width for the first block.
                assert block.attention.fc_reduce.in_channels == block.conv1.in_channels
            else:
                assert type(block) is tv_resnet.Bottleneck, (stage, index)
    assert trunk.layer2[0].attention.fc_reduce.in_channels == 256
    assert trunk.layer2[1].attention.fc_reduce.in_channels == 512


class Doubler(nn.Module):
    """A stand-in attention whose effect on one tensor path is easy to predict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x


def _small_blocks() -> dict[str, nn.Module]:
    """A BasicBlock and a Bottleneck, each with and without a downsampling shortcut."""
    def projection(inplanes: int, planes: int) -> nn.Sequential:
        return nn.Sequential(tv_resnet.conv1x1(inplanes, planes, 2), nn.BatchNorm2d(planes))

    return {
        "basic": tv_resnet.BasicBlock(16, 16),
        "basic_downsample": tv_resnet.BasicBlock(8, 16, stride=2, downsample=projection(8, 16)),
        "bottleneck": tv_resnet.Bottleneck(16, 4),
        "bottleneck_downsample": tv_resnet.Bottleneck(8, 4, stride=2, downsample=projection(8, 16)),
    }


def _paths(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain block's residual branch and shortcut for ``x``, from its own modules."""
    if isinstance(block, tv_resnet.Bottleneck):
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.relu(block.bn2(block.conv2(out)))
        residual = block.bn3(block.conv3(out))
    else:
        residual = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    shortcut = x if block.downsample is None else block.downsample(x)
    return residual, shortcut


@pytest.mark.parametrize("kind", ["basic", "basic_downsample", "bottleneck", "bottleneck_downsample"])
@pytest.mark.parametrize("position", BLOCK_ATTENTION_POSITIONS)
def test_each_position_changes_exactly_its_tensor_path(kind: str, position: str, randomize_batchnorm) -> None:
    torch.manual_seed(0)
    plain = _small_blocks()[kind]
    randomize_batchnorm(plain)
    plain.eval()
    x = torch.randn(2, plain.conv1.in_channels, 8, 8)
    attentive = add_block_attention(copy.deepcopy(plain), Doubler(), position).eval()
    assert isinstance(attentive, AttentiveBottleneck if "bottleneck" in kind else AttentiveBasicBlock)

    with torch.no_grad():
        residual, shortcut = _paths(plain, x)
        expected = {
            "standard": torch.relu(2.0 * residual + shortcut),
            "pre": torch.relu(_paths(plain, 2.0 * x)[0] + shortcut),
            "post": 2.0 * torch.relu(residual + shortcut),
            "identity": torch.relu(residual + 2.0 * shortcut),
        }
        plain_output = plain(x)
        output = attentive(x)
    assert torch.allclose(plain_output, torch.relu(residual + shortcut), atol=1e-6)
    assert torch.allclose(output, expected[position], atol=1e-5)
    for other, value in expected.items():
        if other != position:
            assert not torch.allclose(output, value, atol=1e-3), f"{position} acts like {other}"


@pytest.mark.parametrize(
    ("name", "position"), [("resnet18", position) for position in BLOCK_ATTENTION_POSITIONS] + [("resnet50", "identity")]
)
def test_identity_init_block_attention_leaves_the_trunk_unchanged(name: str, position: str) -> None:
    torch.manual_seed(0)
    plain = ResNetTrunk(name).eval()
    torch.manual_seed(0)
    attentive = ResNetTrunk(name, block_attention="se", block_attention_position=position,
                            block_attention_init="identity").eval()
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected, actual = plain(images), attentive(images)
    for level in expected:
        assert torch.equal(expected[level], actual[level]), level


def test_paper_init_block_attention_changes_the_output() -> None:
    torch.manual_seed(0)
    plain = ResNetTrunk("resnet18").eval()
    torch.manual_seed(0)
    attentive = ResNetTrunk("resnet18", block_attention="se", block_attention_stages="layer4").eval()
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected, actual = plain(images), attentive(images)
    assert torch.equal(expected["c4"], actual["c4"])  # layer3 has no attention
    assert not torch.allclose(expected["c5"], actual["c5"], atol=1e-4)


def test_input_is_converted_to_torchvision_normalised_rgb() -> None:
    trunk = ResNetTrunk("resnet18").eval()
    reference = torchvision.models.resnet18(weights=None).eval()
    reference.load_state_dict(trunk.state_dict(), strict=False)
    bgr = torch.rand(1, 3, 64, 64) * 255
    rgb = bgr.flip(1) / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    normalised = (rgb - mean) / std
    with torch.no_grad():
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(normalised))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))
        actual = trunk(bgr)["c5"]
    assert torch.allclose(actual, expected, atol=1e-4)


def test_bad_names_positions_and_stages_list_the_valid_values() -> None:
    with pytest.raises(UserError, match="resnet18, resnet34, resnet50, resnet101, resnet152"):
        ResNetTrunk("resnet20")
    with pytest.raises(UserError, match="standard, pre, post, identity"):
        ResNetTrunk("resnet18", block_attention="se", block_attention_position="middle")
    with pytest.raises(UserError, match="layer1, layer2, layer3, layer4"):
        ResNetTrunk("resnet18", block_attention="se", block_attention_stages=("layer3", "layer5"))
    with pytest.raises(UserError, match="layer1, layer2, layer3, layer4"):
        ResNetTrunk("resnet18", block_attention="se", block_attention_stages=())
    with pytest.raises(UserError, match="unknown attention 'nope'"):
        ResNetTrunk("resnet18", block_attention="nope")
    with pytest.raises(UserError, match="0 .* 4"):
        ResNetTrunk("resnet18", frozen_stages=5)


# ---------------------------------------------------------------------------- ImageNet weights


def test_local_weights_load_with_torchvision_keys_and_attention_reported_new(tmp_path) -> None:
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    trunk = ResNetTrunk("resnet18", block_attention="se", block_attention_stages=("layer4",))

    report = load_resnet_weights(trunk, path)

    trunk_state = trunk.state_dict()
    for key, tensor in imagenet.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(trunk_state[key], tensor), key
    attention_keys = tuple(key for key in trunk_state if ".attention." in key)
    assert report.new == attention_keys and len(attention_keys) == 2 * 4  # two blocks, two convs with biases
    assert report.ignored == ("fc.bias", "fc.weight")
    assert report.loaded == len(trunk_state) - len(attention_keys)


def test_weights_in_a_checkpoint_wrapper_are_found(tmp_path) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state}, path)
    assert load_resnet_weights(ResNetTrunk("resnet18"), path).loaded == len(state) - 2


def test_missing_weights_file_names_the_path_and_the_architecture(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(UserError, match=f"{missing}.*no such file.*resnet18"):
        load_resnet_weights(ResNetTrunk("resnet18"), missing)


def test_weights_of_another_depth_are_a_clear_error(tmp_path) -> None:
    with torch.device("meta"):
        other = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pth"
    torch.save({key: torch.zeros(t.shape) for key, t in other.state_dict().items()}, path)
    with pytest.raises(UserError, match=r"resnet34\.pth: expected a torchvision resnet18 state dict, but the file "
                                        r"holds resnet34"):
        load_resnet_weights(ResNetTrunk("resnet18"), path)


def test_a_file_that_is_no_state_dict_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.pth: cannot be read"):
        load_resnet_weights(ResNetTrunk("resnet18"), path)


def test_describe_state_dict_names_each_depth() -> None:
    for name in RESNET_BACKBONES:
        with torch.device("meta"):
            state = getattr(torchvision.models, name)(weights=None).state_dict()
        assert describe_resnet_state_dict(state) == name
    assert "absent" in describe_resnet_state_dict({"conv.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------- freezing


def test_freezing_stops_gradients_and_keeps_batchnorm_statistics() -> None:
    trunk = ResNetTrunk("resnet18", frozen_stages=2, block_attention="se",
                        block_attention_stages=("layer1", "layer3"))
    trunk.train()
    for name, parameter in trunk.named_parameters():
        frozen_part = name.startswith(("conv1.", "bn1.", "layer1.", "layer2."))
        assert parameter.requires_grad == (not frozen_part or ".attention." in name), name
    assert not trunk.bn1.training and not trunk.layer2[0].bn1.training
    assert trunk.layer3[0].bn1.training
    assert trunk.layer1[0].attention.training

    frozen_before = trunk.layer1[0].bn1.running_mean.clone()
    trunk(torch.rand(2, 3, 64, 64) * 255)["c5"].sum().backward()
    assert torch.equal(trunk.layer1[0].bn1.running_mean, frozen_before)
    assert trunk.layer1[0].conv1.weight.grad is None
    assert trunk.layer1[0].attention.fc_reduce.weight.grad is not None
    assert trunk.layer3[0].conv1.weight.grad is not None


def test_freezing_everything_leaves_nothing_trainable_without_attention() -> None:
    trunk = ResNetTrunk("resnet18", frozen_stages=4)
    assert not any(parameter.requires_grad for parameter in trunk.parameters())


# ---------------------------------------------------------------------------- detectors from the exp


def _resnet_exp(backbone: str = "resnet18", **settings):
    """A small-input exp for a ResNet detector with ``settings`` applied."""
    from yolox.exp.yolox_base import Exp

    exp = Exp()
    exp.backbone = backbone
    exp.depth, exp.width = 0.33, 0.5 if backbone in ("resnet18", "resnet34") else 1.0
    exp.num_classes = 3
    exp.input_size = exp.test_size = (64, 64)
    for key, value in settings.items():
        setattr(exp, key, value)
    return exp


def _eval_output(exp, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    model = exp.get_model().eval()
    with torch.no_grad():
        return model(images)


@pytest.mark.parametrize(("backbone", "lateral"), [("resnet18", False), ("resnet50", True)])
def test_detector_feeds_c3_c4_c5_through_the_neck_to_the_head(backbone: str, lateral: bool) -> None:
    exp = _resnet_exp(backbone)
    torch.manual_seed(0)
    model = exp.get_model()
    state = model.state_dict()
    trunk_keys = [key[len("backbone.backbone."):] for key in state if key.startswith("backbone.backbone.")]
    with torch.device("meta"):
        reference = getattr(torchvision.models, backbone)(weights=None)
    assert trunk_keys == [key for key in reference.state_dict() if not key.startswith("fc.")]
    lateral_keys = [key for key in state if key.startswith("backbone.lateral.")]
    assert bool(lateral_keys) == lateral
    if lateral:  # 512/1024/2048 halved to the width-1.0 neck's 256/512/1024
        assert [tuple(state[f"backbone.lateral.{level}.conv.weight"].shape[:2]) for level in ("c3", "c4", "c5")] == [
            (256, 512), (512, 1024), (1024, 2048)]
    model.eval()
    with torch.no_grad():
        output = model(torch.rand(2, 3, 64, 96) * 255)
    assert tuple(output.shape) == (2, 8 * 12 + 4 * 6 + 2 * 3, 5 + 3)
    if lateral:
        return  # one training forward (below) is enough
    model.train()
    losses = model(torch.rand(1, 3, 64, 64) * 255, torch.tensor([[[1.0, 30.0, 30.0, 20.0, 16.0]]]))
    assert torch.isfinite(losses["total_loss"])


def test_stage_output_attention_lives_under_its_level_names() -> None:
    exp = _resnet_exp(attention="se", attention_levels=("c3", "c5"))
    state = exp.get_model().state_dict()
    plain = _resnet_exp().get_model().state_dict()
    new = sorted(set(state) - set(plain))
    assert set(plain) <= set(state)
    assert {key.split(".")[2] for key in new} == {"c3", "c5"} and all(key.startswith("backbone.attn.") for key in new)
    assert state["backbone.attn.c5.fc_reduce.weight"].shape[1] == 512  # on the stage output itself


def test_neck_position_works_unchanged_on_a_resnet() -> None:
    exp = _resnet_exp(attention="cam", attention_position="both")
    state = exp.get_model().state_dict()
    levels = {key.split(".")[2] for key in state if key.startswith(("backbone.attn.", "backbone.neck_attn."))}
    assert levels == {"c3", "c4", "c5", "pan3", "pan4", "pan5"}


@pytest.mark.parametrize("position", BLOCK_ATTENTION_POSITIONS)
def test_identity_init_attention_gives_exactly_the_plain_detector(position: str) -> None:
    images = torch.rand(1, 3, 64, 64) * 255
    plain = _eval_output(_resnet_exp(), images)
    attentive = _eval_output(_resnet_exp(
        attention="se", attention_init="identity", block_attention="se", block_attention_init="identity",
        block_attention_position=position, block_attention_stages=("layer1", "layer2", "layer3", "layer4"),
    ), images)
    assert torch.equal(plain, attentive)


def test_seed_gives_the_same_neck_and_head_with_or_without_block_attention() -> None:
    torch.manual_seed(0)
    plain = _resnet_exp().get_model().state_dict()
    torch.manual_seed(0)
    attentive = _resnet_exp(block_attention="cam", attention="se").get_model().state_dict()
    for key, tensor in plain.items():
        assert torch.equal(tensor, attentive[key]), key


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backbone": "resnet20"}, "cspdarknet, resnet18, resnet34, resnet50, resnet101, resnet152"),
        ({"attention": "se", "attention_levels": ("dark3",)}, "c3, c4, c5"),
        ({"backbone": "cspdarknet", "attention": "se", "attention_levels": ("c3",)}, "dark3, dark4, dark5"),
        ({"block_attention": "se", "block_attention_position": "inside"}, "standard, pre, post, identity"),
        ({"block_attention": "se", "block_attention_stages": ("layer0",)}, "layer1, layer2, layer3, layer4"),
        ({"block_attention": "nope"}, "unknown"),
        ({"backbone": "cspdarknet", "block_attention": "se"}, "ResNet backbone"),
        ({"backbone": "cspdarknet", "backbone_weights": "/x/resnet18.pth"}, "ResNet backbone"),
        ({"freeze_backbone_stages": 7}, "0 .*4"),
    ],
)
def test_bad_backbone_settings_are_clear_errors(settings: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        _resnet_exp(**settings).get_model()


def test_exp_loads_local_imagenet_weights_into_the_trunk(tmp_path) -> None:
    imagenet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    model = _resnet_exp(backbone_weights=str(path), block_attention="se").get_model()
    trunk = model.backbone.backbone
    assert torch.equal(trunk.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    assert torch.equal(trunk.bn1.running_var, imagenet.bn1.running_var)
    assert trunk.bn1.eps == imagenet.bn1.eps  # the trunk keeps torchvision's BatchNorm eps for its statistics
    with pytest.raises(UserError, match="missing.pth: no such file"):
        _resnet_exp(backbone_weights=str(tmp_path / "missing.pth")).get_model()


def test_frozen_stages_stay_out_of_the_optimizer() -> None:
    exp = _resnet_exp(freeze_backbone_stages=3, block_attention="se")
    model = exp.get_model()
    optimizer = exp.get_optimizer(batch_size=2)
    in_groups = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(in_groups) == sorted(trainable) and len(set(in_groups)) == len(in_groups)
    assert not model.backbone.backbone.layer3[0].conv1.weight.requires_grad
    assert model.backbone.backbone.layer3[0].attention.fc_reduce.weight.requires_grad
    assert model.backbone.backbone.layer4[0].conv1.weight.requires_grad


def test_meta_records_the_backbone_and_refuses_another() -> None:
    exp = _resnet_exp(block_attention="se")
    meta = exp.meta()
    assert meta["backbone"] == "resnet18" and meta["block_attention"] == "se"
    assert meta["block_attention_stages"] == ["layer3", "layer4"]
    with pytest.raises(UserError, match="backbone='resnet18'"):
        _resnet_exp("resnet34").check_meta(meta, "model.pth")


@pytest.mark.parametrize("exp_file", ["yolox_r18_se.py", "yolox_r18_cam.py", "yolox_r50_cam.py",
                                      "yolox_r18_se_blocks.py"])
def test_resnet_exps_build(exp_file: str) -> None:
    from tests.conftest import REPO_ROOT
    from yolox.exp import get_exp

    exp = get_exp(str(REPO_ROOT / "exps" / "resnet" / exp_file))
    exp.test_size = (64, 64)
    model = exp.get_model().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64) * 255).shape == (1, 84, 85)
    attention_keys = [key for key in model.state_dict() if "attn." in key or ".attention." in key]
    assert attention_keys


@pytest.mark.parametrize(("backbone", "position"), [("resnet18", "standard"), ("resnet50", "identity")])
def test_fuse_folds_the_trunk_batchnorms_and_keeps_the_outputs(backbone: str, position: str,
                                                              randomize_batchnorm) -> None:
    from yolox.utils.model_utils import fuse_model

    exp = _resnet_exp(backbone, block_attention="se", block_attention_position=position)
    torch.manual_seed(0)
    model = exp.get_model()
    randomize_batchnorm(model)
    model.eval()
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model(images)
        fuse_model(model)
        actual = model(images)
    trunk = model.backbone.backbone
    left = [name for name, module in trunk.named_modules()
            if isinstance(module, nn.BatchNorm2d) and ".attention." not in f".{name}."]
    assert left == []
    assert torch.allclose(actual[..., 4:], expected[..., 4:], atol=1e-4)
    assert torch.allclose(actual[..., :4], expected[..., :4], atol=1e-2)


@pytest.mark.parametrize("variant", ["stage_outputs", "in_block"])
def test_onnx_export_matches_pytorch(variant: str, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    from yolox.utils.export import export_metadata, export_onnx, prepare_for_export

    settings = ({"attention": "cam", "attention_levels": ("c3", "c4", "c5")} if variant == "stage_outputs"
                else {"block_attention": "se", "block_attention_position": "identity"})
    exp = _resnet_exp(**settings)
    torch.manual_seed(0)
    model = prepare_for_export(exp.get_model(), decode_in_inference=True)
    metadata = export_metadata(exp, None, (64, 64), decode_in_inference=True)
    path = export_onnx(model, tmp_path / "model.onnx", (64, 64), metadata)
    images = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model(images).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"images": images.numpy()})[0]
    assert actual.shape == expected.shape
    assert abs(actual[..., :4] - expected[..., :4]).max() < 1e-2  # boxes in pixels
    assert abs(actual[..., 4:] - expected[..., 4:]).max() < 1e-4  # objectness and class scores


def _generated_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64x64 images with bright rectangles on grey and their targets (class, cx, cy, w, h)."""
    images = torch.full((2, 3, 64, 64), 114.0)
    boxes = [[(0, 6, 8, 26, 30), (1, 33, 32, 60, 54)], [(2, 13, 33, 40, 60), (0, 40, 5, 61, 26)]]
    targets = torch.zeros(2, 10, 5)
    colours = {0: (255.0, 40.0, 40.0), 1: (40.0, 255.0, 40.0), 2: (40.0, 40.0, 255.0)}
    for image, image_boxes in enumerate(boxes):
        for row, (cls, x1, y1, x2, y2) in enumerate(image_boxes):
            images[image, :, y1:y2, x1:x2] = torch.tensor(colours[cls]).reshape(3, 1, 1)
            targets[image, row] = torch.tensor([cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return images, targets


@pytest.mark.slow
def test_short_training_of_an_se_resnet18_lowers_the_loss() -> None:
    exp = _resnet_exp(attention="se", block_attention="se", warmup_epochs=0, basic_lr_per_img=0.01)
    torch.manual_seed(0)
    model = exp.get_model().train()
    optimizer = exp.get_optimizer(batch_size=2)
    images, targets = _generated_batch()
    losses = []
    for _ in range(12):
        loss = model(images, targets)["total_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # Single YOLOX losses jump as SimOTA re-assigns anchors; compare the first and last four steps.
    assert sum(losses[-4:]) < 0.9 * sum(losses[:4]), losses
