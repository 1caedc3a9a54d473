"""ONNX and TorchScript export: parity with PyTorch for every attention type, metadata, tools, bad input."""

import functools
import importlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolox.exp import get_exp
from yolox.models import available_attentions
from yolox.utils.errors import UserError
from yolox.utils.export import (
    export_metadata,
    export_onnx,
    export_torchscript,
    load_torchscript,
    prepare_for_export,
    read_onnx_metadata,
    simplify_onnx,
)
from yolox.utils.onnx_inference import letterbox

ATTENTIONS = [None] + available_attentions()
OTHER_SIZE = (96, 64)  # a second input size for the dynamic-shape checks
TINY_OPTS = ["depth", "0.33", "width", "0.125", "num_classes", "3", "test_size", "64,64"]


def load_tool(name):
    """The module of the command ``name``."""
    return importlib.import_module(f"yolox.cli.{name}")


def shapes_batch(input_hw, seeds=(0, 1, 2, 3)):
    """Letterboxed images of a few filled rectangles on a gradient, as a network input batch."""
    images = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        image = np.zeros((100, 140, 3), np.uint8)
        image[:] = np.linspace(20, 200, 140, dtype=np.uint8)[None, :, None]
        for _ in range(4):
            x, y = int(rng.integers(0, 110)), int(rng.integers(0, 70))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 30)), y + int(rng.integers(10, 30))), color, -1)
        images.append(torch.from_numpy(letterbox(image, input_hw)[0]))
    return torch.stack(images)


@pytest.fixture(scope="module")
def tiny_model(calibrate_batchnorm):
    """``tiny_model(attention=None, test_size=(64, 64))``: a depth 0.33, width 0.125 YOLOX and its exp.

    Its BatchNorm statistics come from generated images: un-calibrated random networks give near-constant
    outputs, which would make parity checks trivial. Cached: the ONNX and TorchScript checks of one
    attention type share the model (callers set the head's decode flag explicitly).
    """

    @functools.cache
    def build(attention=None, test_size=(64, 64)):
        exp = get_exp(None, "yolox-s")
        exp.merge(TINY_OPTS)
        exp.attention, exp.test_size = attention, test_size
        torch.manual_seed(0)
        model = exp.get_model().eval()
        # Both sizes the tests run at, so that neither sees inputs far from the statistics.
        calibrate_batchnorm(model, shapes_batch(test_size), shapes_batch(OTHER_SIZE))
        return exp, model

    return build


def torch_outputs(model, images, decode):
    """The PyTorch outputs with the head decoding or not."""
    model.head.decode_in_inference = decode
    with torch.no_grad():
        return model(images).numpy()


def assert_relative_close(actual, expected, rtol=1e-4):
    """Equal within ``rtol`` relative to each output channel's scale (largest magnitude of that channel).

    Element-wise relative error is meaningless for box centres near 0, which are differences of larger
    numbers; the channel's scale (the input size for boxes, 1 for scores) is the right yardstick.
    """
    assert actual.shape == expected.shape
    scale = np.abs(expected).reshape(-1, expected.shape[-1]).max(axis=0)
    error = np.abs(actual - expected).reshape(-1, expected.shape[-1]).max(axis=0)
    worst = int(np.argmax(error / scale))
    assert (error <= rtol * scale).all(), (
        f"channel {worst}: max difference {error[worst]:.3g} exceeds {rtol:g} x scale {scale[worst]:.3g}")


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_onnx_matches_pytorch_for_every_attention(tmp_path, attention, tiny_model):
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    exp, model = tiny_model(attention)
    path = tmp_path / "model.onnx"
    metadata = export_metadata(exp, None, (64, 64), True, dynamic_hw=True)
    export_onnx(prepare_for_export(model, True), path, (64, 64), metadata, dynamic_hw=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The export size with a batch of 2, then another (non-square) size.
    for images in (shapes_batch((64, 64), seeds=(0, 1)), shapes_batch(OTHER_SIZE, seeds=(2,))):
        (actual,) = session.run(None, {"images": images.numpy()})
        assert_relative_close(actual, torch_outputs(model, images, decode=True))
    assert read_onnx_metadata(path)["attention"]["attention"] == attention


def test_raw_export_metadata_names_and_opset(tmp_path, tiny_model):
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    import onnx

    exp, model = tiny_model("cbam")
    names = ["circle", "square", "triangle"]
    path = tmp_path / "raw.onnx"
    metadata = export_metadata(exp, names, (64, 64), False)
    export_onnx(prepare_for_export(model, False), path, (64, 64), metadata, opset=13,
                input_name="pixels", output_name="predictions")
    graph = onnx.load(str(path))
    assert {entry.domain: entry.version for entry in graph.opset_import}[""] == 13
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    assert model_input.name == "pixels" and model_input.shape[1:] == [3, 64, 64]
    assert not isinstance(model_input.shape[0], int), "the batch axis should be dynamic"
    assert session.get_outputs()[0].name == "predictions"
    images = shapes_batch((64, 64), seeds=(0, 1, 2))
    (actual,) = session.run(None, {"pixels": images.numpy()})
    assert_relative_close(actual, torch_outputs(model, images, decode=False))

    meta = read_onnx_metadata(path)
    assert "BGR" in meta["input_convention"] and "114" in meta["input_convention"]
    assert "top-left" in meta["input_convention"]
    assert meta["input_size"] == [64, 64] and meta["class_names"] == names and meta["num_classes"] == 3
    assert meta["decode_in_inference"] is False and meta["strides"] == [8, 16, 32]
    assert meta["attention"] == {"attention": "cbam", "attention_position": "backbone",
                                 "attention_levels": ["dark3", "dark4", "dark5"], "attention_kwargs": {},
                                 "attention_init": "paper", "backbone": "cspdarknet", "block_attention": None,
                                 "block_attention_position": "standard", "block_attention_stages": ["layer3", "layer4"],
                                 "block_attention_kwargs": {}, "block_attention_init": "paper"}
    assert meta["dynamic_batch"] is True and meta["dynamic_hw"] is False


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_torchscript_matches_pytorch_for_every_attention(tmp_path, attention, tiny_model):
    exp, model = tiny_model(attention)
    path = tmp_path / "model.torchscript.pt"
    export_torchscript(prepare_for_export(model, True), path, (64, 64),
                       export_metadata(exp, ["a", "b", "c"], (64, 64), True))
    traced, meta = load_torchscript(path)
    assert meta["class_names"] == ["a", "b", "c"] and meta["input_size"] == [64, 64]
    assert meta["attention"]["attention"] == attention
    for images in (shapes_batch((64, 64), seeds=(0, 1)), shapes_batch(OTHER_SIZE, seeds=(2,))):
        # The graph optimiser's profiling runs cost seconds and change nothing numerically here.
        with torch.no_grad(), torch.jit.optimized_execution(False):
            actual = traced(images).numpy()
        assert_relative_close(actual, torch_outputs(model, images, decode=True))


def test_simplify_without_onnxsim_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # makes `import onnxsim` fail
    with pytest.raises(UserError, match="pip install onnxsim"):
        simplify_onnx(object())


def test_simplified_export_keeps_parity(tmp_path, tiny_model):
    pytest.importorskip("onnxsim", reason="onnxsim is not installed (optional: pip install onnxsim)")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    exp, model = tiny_model("se")
    path = tmp_path / "simple.onnx"
    export_onnx(prepare_for_export(model, True), path, (64, 64),
                export_metadata(exp, None, (64, 64), True), simplify=True)
    images = shapes_batch((64, 64), seeds=(0,))
    (actual,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": images.numpy()})
    assert_relative_close(actual, torch_outputs(model, images, decode=True))
    assert read_onnx_metadata(path)["input_size"] == [64, 64]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    """A tiny CBAM model's checkpoint with class names in its meta."""
    exp, model = tiny_model("cbam")
    meta = exp.meta()
    meta["class_names"] = ["circle", "square", "triangle"]
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": model.state_dict(), "meta": meta, "start_epoch": 1}, path)
    return path


def test_export_tools_write_models_with_the_checkpoint_class_names(tmp_path, checkpoint, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")
    onnx_path, ts_path = tmp_path / "out" / "tiny.onnx", tmp_path / "tiny.pt"
    opts = [*TINY_OPTS, "attention", "cbam"]
    assert load_tool("export_onnx").main(["-n", "yolox-s", "-c", str(checkpoint), "--output-name", str(onnx_path),
                                          "--dynamic-hw", "--decode_in_inference", *opts]) == 0
    assert "wrote" in capsys.readouterr().out
    meta = read_onnx_metadata(onnx_path)
    assert meta["class_names"] == ["circle", "square", "triangle"]
    assert meta["dynamic_hw"] is True and meta["decode_in_inference"] is True
    assert load_tool("export_torchscript").main(["-n", "yolox-s", "-c", str(checkpoint), "--output-name",
                                                 str(ts_path), *opts]) == 0
    _, ts_meta = load_torchscript(ts_path)
    assert ts_meta["class_names"] == ["circle", "square", "triangle"] and ts_meta["decode_in_inference"] is False


@pytest.mark.parametrize("tool", ["export_onnx", "export_torchscript"])
def test_export_tools_reject_bad_checkpoints(tmp_path, checkpoint, capsys, tool):
    main = load_tool(tool).main
    out = str(tmp_path / "never_written")
    assert main(["-n", "yolox-s", "-c", str(tmp_path / "missing.pth"), "--output-name", out, *TINY_OPTS]) == 2
    assert "missing.pth does not exist" in capsys.readouterr().err
    # The checkpoint has 3 classes (and CBAM); an exp with 4 classes must be refused before exporting.
    wrong = [*TINY_OPTS, "attention", "cbam", "num_classes", "4"]
    assert main(["-n", "yolox-s", "-c", str(checkpoint), "--output-name", out, *wrong]) == 2
    error = capsys.readouterr().err
    assert "num_classes" in error and "3" in error and "4" in error
    assert not Path(out).exists()


@pytest.mark.parametrize("exporter", ["onnx", "torchscript"])
def test_export_to_a_read_only_folder_is_one_clear_error(tmp_path, tiny_model, small_tmpfs, exporter):
    _, model = tiny_model(None)
    export = {"onnx": export_onnx, "torchscript": export_torchscript}[exporter]
    with small_tmpfs(tmp_path / "ro", "size=64k,ro") as folder:
        target = folder / f"model.{exporter}"
        with pytest.raises(UserError) as caught:
            export(prepare_for_export(model, True), target, (64, 64), {})
    message = str(caught.value)
    assert message == f"cannot write the export {target}: the folder is on a read-only file system; " \
                      "choose another output path"


def test_official_batch_flags_fix_or_free_the_batch_axis(tmp_path, checkpoint, capsys):
    """As in the official exporter: ``--batch-size N`` alone fixes the batch at N, ``--dynamic`` keeps it free."""
    import onnx

    main = load_tool("export_onnx").main
    opts = [*TINY_OPTS, "attention", "cbam"]
    batch_axes = {}
    for name, flags in (("fixed", ["--batch-size", "2"]), ("dynamic", ["--dynamic", "--batch-size", "2"]),
                        ("default", []), ("no_onnxsim", ["--no-onnxsim"])):
        path = tmp_path / f"{name}.onnx"
        assert main(["-n", "yolox-s", "-c", str(checkpoint), "--output-name", str(path), *flags, *opts]) == 0
        batch_axes[name] = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axes["fixed"].dim_value == 2 and not batch_axes["fixed"].dim_param
    assert [batch_axes[name].dim_param for name in ("dynamic", "default", "no_onnxsim")] == ["batch"] * 3
    assert read_onnx_metadata(tmp_path / "fixed.onnx")["dynamic_batch"] is False
    assert "batch 2" in capsys.readouterr().out
    assert main(["-n", "yolox-s", "-c", str(checkpoint), "--simplify", "--no-onnxsim", *opts]) == 2
    assert "contradict" in capsys.readouterr().err
