"""The second-order, residual, parameter-free and multi-scale blocks: formulas, edge cases, costs, registry."""

import pytest
import torch
import torch.nn.functional as F
from loguru import logger

from yolox.exp import get_exp
from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead, attention, build_attention
from yolox.models.attention import CBAM, _adaptive_mean_matrix, newton_schulz_sqrt
from yolox.utils.errors import UserError
from yolox.utils.model_utils import attention_cost_warning, get_model_info, get_model_stats


def test_newton_schulz_square_root_matches_eigh_on_a_well_conditioned_matrix():
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    matrix = basis @ torch.diag(torch.tensor([0.9, 1.0, 1.05, 1.1], dtype=torch.float64)) @ basis.T
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    exact = eigenvectors @ torch.diag(eigenvalues.sqrt()) @ eigenvectors.T
    approximate = newton_schulz_sqrt(matrix, iterations=5)
    assert ((approximate - exact).norm() / exact.norm()).item() < 1e-3
    assert torch.allclose(approximate @ approximate, matrix, rtol=1e-3, atol=1e-3)


def _relative_error_on_white_features(channels: int, iterations: int = 5) -> float:
    """Newton-Schulz against the eigendecomposition's square root, for the covariance of white features."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(channels, 1024, generator=generator, dtype=torch.float64)
    centred = features - features.mean(dim=1, keepdim=True)
    covariance = centred @ centred.T / 1024 + 1e-5 * torch.eye(channels, dtype=torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    exact = eigenvectors @ torch.diag(eigenvalues.sqrt()) @ eigenvectors.T
    return ((newton_schulz_sqrt(covariance, iterations) - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize("channels, error", [(64, 0.24), (128, 0.39), (256, 0.53), (512, 0.63)])
def test_five_newton_schulz_iterations_leave_the_documented_error(channels, error):
    """SOCA's docstring states these figures: an approximation that worsens with the channel count."""
    assert _relative_error_on_white_features(channels) == pytest.approx(error, abs=0.01)


def test_ten_newton_schulz_iterations_come_close_at_512_channels():
    assert _relative_error_on_white_features(512, iterations=10) < 0.04


@pytest.mark.parametrize("height, width", [(40, 70), (20, 20), (1, 50), (33, 7)])
def test_soca_pooling_is_adaptive_average_pooling_capped_at_32(height, width):
    x = torch.randn(2, 3, height, width)
    rows = _adaptive_mean_matrix(torch.tensor(height), 32, x.dtype, x.device)
    columns = _adaptive_mean_matrix(torch.tensor(width), 32, x.dtype, x.device)
    expected = F.adaptive_avg_pool2d(x, (min(height, 32), min(width, 32)))
    assert torch.allclose(rows @ x @ columns.T, expected, atol=1e-6)


def test_soca_gate_follows_the_covariance_formula():
    torch.manual_seed(0)
    block = build_attention("soca", 16).eval()
    x = torch.randn(2, 16, 6, 5)
    features = x.flatten(2)
    centred = features - features.mean(2, keepdim=True)
    covariance = centred @ centred.transpose(1, 2) / 30 + 1e-5 * torch.eye(16)
    statistics = newton_schulz_sqrt(covariance, 5).mean(2)[:, :, None, None]
    gate = torch.sigmoid(block.conv_expand(torch.relu(block.conv_reduce(statistics))))
    with torch.no_grad():
        assert torch.allclose(block(x), x * gate, atol=1e-6)
    assert block.conv_reduce.weight.shape == (8, 16, 1, 1)
    assert build_attention("soca", 512).conv_reduce.weight.shape == (64, 512, 1, 1)  # C / 8


@pytest.mark.parametrize("x", [torch.randn(2, 64, 4, 4), torch.zeros(1, 64, 3, 3), torch.ones(1, 64, 1, 1)],
                         ids=["rank-deficient", "zero", "one-pixel"])
def test_soca_stays_finite_when_the_covariance_is_singular(x):
    block = build_attention("soca", 64)
    x = x.clone().requires_grad_(True)
    output = block(x)
    output.sum().backward()
    assert torch.isfinite(output).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(parameter.grad).all() for parameter in block.parameters())


def test_soca_statistics_are_float32_under_autocast():
    torch.manual_seed(0)
    block = build_attention("soca", 16).eval()
    x = torch.randn(2, 16, 9, 7)
    with torch.no_grad():
        reference = block(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = block(x)
            half_output = block(x.bfloat16())
    assert torch.equal(output, reference)  # nothing is computed in bfloat16
    assert half_output.dtype == torch.bfloat16


def test_simam_formula_and_one_pixel_maps():
    block = build_attention("simam", 8)
    assert list(block.parameters()) == []
    x = torch.randn(2, 8, 4, 5)
    deviation = (x - x.mean((2, 3), keepdim=True)) ** 2
    variance = deviation.sum((2, 3), keepdim=True) / (4 * 5 - 1)
    expected = x * torch.sigmoid(deviation / (4 * (variance + 1e-4)) + 0.5)
    assert torch.allclose(block(x), expected, atol=1e-6)
    one_pixel = torch.randn(2, 8, 1, 1)
    assert torch.allclose(block(one_pixel), one_pixel * torch.sigmoid(torch.tensor(0.5)))


@pytest.mark.parametrize("channels, groups, logged", [(64, 32, False), (48, 24, True), (16, 16, True), (7, 7, True)])
def test_ema_groups_are_lowered_to_a_divisor_with_a_log_line(channels, groups, logged):
    messages = []
    sink = logger.add(messages.append, level="INFO")
    try:
        block = build_attention("ema", channels)
    finally:
        logger.remove(sink)
    assert block.groups == groups and channels % block.groups == 0
    assert any(f"using groups={groups}" in message for message in messages) == logged
    width = channels // groups
    assert block.conv3x3.weight.shape == (width, width, 3, 3) and block.norm.num_groups == width


def test_ema_output_is_the_input_gated_per_group():
    torch.manual_seed(0)
    block = build_attention("ema", 64, groups=8).eval()
    x = torch.randn(2, 64, 6, 5)
    with torch.no_grad():
        output = block(x)
    gate = output / x  # one spatial map per group, shared by its 8 channels, in (0, 1)
    grouped = gate.reshape(2, 8, 8, 6, 5)
    assert torch.allclose(grouped, grouped[:, :, :1].expand_as(grouped), atol=1e-4)
    assert (gate > 0).all() and (gate < 1).all()


def test_residual_cbam_adds_cbam_to_its_input():
    torch.manual_seed(0)
    residual = build_attention("cbam_res", 32)
    plain = CBAM(32)
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        assert torch.allclose(residual(x), x + plain(x), atol=1e-6)
        ratio = (residual(x.abs() + 1) / (x.abs() + 1)).mean()
    assert 1.1 < ratio < 1.4  # both gates start near 0.5: about 1.25x the input


@pytest.mark.parametrize("name, options, message", [
    ("soca", {"max_positions": 0}, "'max_positions' must be a positive int"),
    ("soca", {"eps": 0.0}, "'eps' must be a positive number"),
    ("simam", {"energy_lambda": -1.0}, "'energy_lambda' must be a positive number"),
    ("ema", {"groups": 0}, "'groups' must be a positive int"),
])
def test_bad_options_of_the_new_blocks_are_named(name, options, message):
    with pytest.raises(UserError, match=message):
        build_attention(name, 64, **options)


def small_model(attention=None, **options) -> YOLOX:
    return YOLOX(YOLOPAFPN(0.33, 0.25, attention=attention, **options), YOLOXHead(2, width=0.25))


def test_model_summary_shows_the_attention_flops():
    stats = get_model_stats(small_model("soca", attention_position="both"), 64)
    assert [entry["level"] for entry in stats["attention"]] == ["dark3", "dark4", "dark5", "pan3", "pan4", "pan5"]
    assert all(entry["block"] == "soca" and entry["gflops"] > 0 for entry in stats["attention"])
    plain = get_model_stats(small_model(), 64)
    assert stats["attention_gflops"] == pytest.approx(stats["gflops"] - plain["gflops"], rel=1e-6)
    assert "attention Gflops" in get_model_info(small_model("soca"), 64)
    assert "attention" not in get_model_info(small_model(), 64)


def test_costly_attention_is_warned_with_block_level_and_figure():
    warning = attention_cost_warning(small_model("soca"), 64)
    assert warning is not None and "'soca' at dark5" in warning and "%" in warning
    assert attention_cost_warning(small_model("se"), 64) is None
    exp = get_exp(exp_name="yolox-nano")
    exp.merge(["attention", "soca", "test_size", "64,64"])
    messages = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        exp.get_model()
    finally:
        logger.remove(sink)
    assert any("'soca' at dark5" in message and "GFLOPs" in message for message in messages)


def test_an_exp_file_that_registers_a_block_loads_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(attention, "_ATTENTION_REGISTRY", dict(attention._ATTENTION_REGISTRY))
    exp_file = tmp_path / "gate_exp.py"
    exp_file.write_text(
        "import torch\nfrom torch import nn\n\nfrom yolox.exp import Exp as Base\n"
        "from yolox.models.attention import register_attention\n\n\n"
        "@register_attention('gate_twice')\nclass Gate(nn.Module):\n"
        "    def __init__(self, channels: int) -> None:\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(channels, channels, 1)\n\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return x * torch.sigmoid(self.conv(x))\n\n\n"
        "class Exp(Base):\n    def __init__(self) -> None:\n        super().__init__()\n"
        "        self.depth, self.width, self.attention = 0.33, 0.125, 'gate_twice'\n"
    )
    first = get_exp(exp_file=str(exp_file))
    second = get_exp(exp_file=str(exp_file))  # the trainer executes the exp file a second time
    assert first.attention == second.attention == "gate_twice"
    assert any(key.startswith("backbone.attn.dark3.") for key in second.get_model().state_dict())

    # A file of the same name in another folder is another module: its own gate_twice is a clash, never
    # silently built with the first file's class.
    (tmp_path / "other").mkdir()
    namesake = tmp_path / "other" / "gate_exp.py"
    namesake.write_text(exp_file.read_text())
    with pytest.raises(UserError, match=r"attention 'gate_twice' is already registered by .*Gate \(.*gate_exp.py\)"):
        get_exp(exp_file=str(namesake))


@pytest.mark.parametrize("change, cause", [
    (["attention_init", "identity"], "attention_init"),
    (["attention_kwargs", "{'reduction': 4}"], "attention_kwargs"),
    (["attention_position", "neck"], "attention_position"),
])
def test_checkpoint_check_names_the_real_cause(change, cause):
    trained = get_exp(exp_name="yolox-nano")
    trained.merge(["attention", "se"])
    meta = trained.meta()
    current = get_exp(exp_name="yolox-nano")
    current.merge(["attention", "se"] + change)
    with pytest.raises(UserError, match=rf"has {cause}=.* but the exp builds {cause}=") as info:
        current.check_meta(meta, "run/best_ckpt.pth")
    assert "num_classes" not in str(info.value)


def test_checkpoint_check_compares_levels_as_a_set_and_ignores_unused_attention_settings():
    trained = get_exp(exp_name="yolox-nano")
    trained.merge(["attention", "SE", "attention_levels", "dark5,dark3"])
    current = get_exp(exp_name="yolox-nano")
    current.merge(["attention", "se", "attention_levels", "dark3,dark5"])
    current.check_meta(trained.meta(), "run/best_ckpt.pth")
    current.check_meta({**trained.meta(), "attention_levels": ["dark5", "dark3"]}, "run/best_ckpt.pth")
    plain, other_plain = get_exp(exp_name="yolox-nano"), get_exp(exp_name="yolox-nano")
    other_plain.merge(["attention_position", "neck"])
    plain.check_meta(other_plain.meta(), "run/best_ckpt.pth")  # no attention: its settings build nothing


def test_exp_position_defaults_repr_and_meta():
    exp = get_exp(exp_name="yolox-nano")
    exp.merge(["attention", "CBAM_RES", "attention_position", "Neck"])
    assert (exp.attention, exp.attention_position) == ("cbam_res", "neck")
    assert exp.resolved_attention_levels() == ("pan3", "pan4", "pan5")
    assert "attention_position" in repr(exp) and "'neck'" in repr(exp)
    assert exp.meta()["attention_position"] == "neck" and exp.meta()["attention_levels"] == ["pan3", "pan4", "pan5"]
    keys = exp.get_model().state_dict()
    assert any(key.startswith("backbone.neck_attn.pan4.") for key in keys)
    assert not any(key.startswith("backbone.attn.") for key in keys)
    with pytest.raises(UserError, match="attention_levels.*'dark4' is not available at position 'neck'"):
        exp.merge(["attention_levels", "dark4"])
    with pytest.raises(UserError, match="position 'middle' is unknown"):
        get_exp(exp_name="yolox-nano").merge(["attention_position", "middle"])


def test_ema_weighting_of_the_local_branch_is_the_groupnorm_bias():
    """The 1x1 branch is zero-mean per channel after its GroupNorm, so its global mean is the learnt bias."""
    torch.manual_seed(0)
    block = build_attention("ema", 64, groups=8).eval()
    with torch.no_grad():
        block.norm.bias.uniform_(-1.0, 1.0)
    means = []
    block.norm.register_forward_hook(lambda module, inputs, output: means.append(output.mean(dim=(2, 3))))
    with torch.no_grad():
        block(torch.randn(2, 64, 9, 13))
        block(3 * torch.randn(1, 64, 5, 6) + 1)
    for mean in means:
        assert torch.allclose(mean, block.norm.bias.expand_as(mean), atol=1e-5)


def test_newton_schulz_on_correlated_features_is_closer():
    generator = torch.Generator().manual_seed(0)
    for channels in (64, 512):
        signal = torch.randn(channels, 16, generator=generator, dtype=torch.float64)
        features = signal @ torch.randn(16, 1024, generator=generator, dtype=torch.float64)
        features = features + 0.3 * torch.randn(channels, 1024, generator=generator, dtype=torch.float64)
        centred = features - features.mean(dim=1, keepdim=True)
        covariance = centred @ centred.T / 1024 + 1e-5 * torch.eye(channels, dtype=torch.float64)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        exact = eigenvectors @ torch.diag(eigenvalues.sqrt()) @ eigenvectors.T
        error = ((newton_schulz_sqrt(covariance) - exact).norm() / exact.norm()).item()
        assert 0.06 < error < 0.09, (channels, error)
