"""Export a YOLOX model to ONNX (torch.onnx.export) or TorchScript (torch.jit.trace) with its metadata.

ONNX goes through the TorchScript-based exporter (``dynamo=False``): it is the one available in every
supported torch without extra packages, and its ``dynamic_axes`` give a graph whose grids follow the
input's height and width. The metadata (input convention, export size, class names, attention, whether
boxes are decoded) is stored in ONNX ``metadata_props`` and in a JSON extra file of TorchScript archives.
"""

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from yolox.utils.checkpoint import describe_write_error
from yolox.utils.errors import UserError
from yolox.utils.onnx_inference import (
    DEFAULT_STRIDES,
    INPUT_CONVENTION,
    META_ATTENTION,
    META_CLASS_NAMES,
    META_DECODED,
    META_DYNAMIC_BATCH,
    META_DYNAMIC_HW,
    META_EXP_NAME,
    META_INPUT_CONVENTION,
    META_INPUT_SIZE,
    META_NUM_CLASSES,
    META_STRIDES,
    parse_metadata,
)

DEFAULT_OPSET = 17
TORCHSCRIPT_METADATA_FILE = "yolox_metadata.json"


def export_metadata(
    exp: Any,
    class_names: Sequence[str] | None,
    input_hw: Sequence[int],
    decode_in_inference: bool,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    strides: Sequence[int] = DEFAULT_STRIDES,
) -> dict[str, str]:
    """Return the string metadata recorded in an exported model (values are JSON where structured)."""
    # The model-defining settings of the checkpoint meta: backbone, attention and in-block attention.
    attention = {key: value for key, value in exp.meta().items()
                 if key == "backbone" or key.startswith(("attention", "block_attention"))}
    return {
        META_INPUT_CONVENTION: INPUT_CONVENTION,
        META_INPUT_SIZE: json.dumps([int(input_hw[0]), int(input_hw[1])]),
        META_CLASS_NAMES: json.dumps(list(class_names) if class_names is not None else None),
        META_NUM_CLASSES: json.dumps(int(exp.num_classes)),
        META_DECODED: json.dumps(bool(decode_in_inference)),
        META_STRIDES: json.dumps([int(s) for s in strides]),
        META_ATTENTION: json.dumps(attention),
        META_EXP_NAME: str(exp.exp_name),
        META_DYNAMIC_BATCH: json.dumps(bool(dynamic_batch)),
        META_DYNAMIC_HW: json.dumps(bool(dynamic_hw)),
    }


def prepare_for_export(model: nn.Module, decode_in_inference: bool) -> nn.Module:
    """Put ``model`` in eval mode on the CPU with the head decoding boxes or not."""
    model = model.eval().cpu()
    model.head.decode_in_inference = decode_in_inference
    return model


def _check_output_path(output_path: str | Path) -> Path:
    path = Path(output_path)
    if path.is_dir():
        raise UserError(f"output {path} is a folder: give a file name such as {path / 'model.onnx'}")
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` (full disk, read-only folder) into one UserError naming path and cause."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        cause = describe_write_error(err)
        if isinstance(err, RuntimeError) and cause.startswith("RuntimeError"):
            raise  # not a write failure: a real export error keeps its traceback
        raise UserError(f"cannot write the export {path}: {cause}; choose another output path") from err


def simplify_onnx(onnx_model: Any) -> Any:
    """Simplify an ONNX model with onnxsim, raising UserError when it is not installed or fails its check."""
    try:
        import onnxsim
    except ImportError as err:
        raise UserError("--simplify needs the onnxsim package, which is not installed: pip install onnxsim (the "
                        "extra 'yolox-attention[onnxsim]'), or export without --simplify") from err
    simplified, valid = onnxsim.simplify(onnx_model)
    if not valid:
        raise UserError("onnxsim produced a model that fails its own check: export without --simplify")
    return simplified


def export_onnx(
    model: nn.Module,
    output_path: str | Path,
    input_hw: Sequence[int],
    metadata: dict[str, str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    input_name: str = "images",
    output_name: str = "output",
    simplify: bool = False,
    batch_size: int = 1,
) -> Path:
    """Export an eval-mode ``model`` to ONNX at ``input_hw`` (traced with ``batch_size`` images) and attach
    ``metadata``; returns the path."""
    import onnx

    path = _check_output_path(output_path)
    input_axes: dict[int, str] = {}
    output_axes: dict[int, str] = {}
    if dynamic_batch:
        input_axes[0] = output_axes[0] = "batch"
    if dynamic_hw:
        input_axes.update({2: "height", 3: "width"})
        output_axes[1] = "anchors"
    dummy = torch.zeros(batch_size, 3, int(input_hw[0]), int(input_hw[1]))
    with warnings.catch_warnings(), _writing(path):
        # The legacy exporter announces its deprecation on every call; the choice is documented above.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: input_axes, output_name: output_axes} if input_axes else None,
            do_constant_folding=True,
        )
    onnx_model = onnx.load(str(path))
    if simplify:
        onnx_model = simplify_onnx(onnx_model)
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(onnx_model)
    with _writing(path):
        onnx.save(onnx_model, str(path))
    return path


def read_onnx_metadata(path: str | Path) -> dict:
    """Return the parsed metadata of an exported ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return parse_metadata({entry.key: entry.value for entry in model.metadata_props})


def export_torchscript(
    model: nn.Module,
    output_path: str | Path,
    input_hw: Sequence[int],
    metadata: dict[str, str],
    batch_size: int = 1,
) -> Path:
    """Trace an eval-mode ``model`` at ``input_hw`` with ``batch_size`` images and save it with ``metadata``."""
    path = _check_output_path(output_path)
    dummy = torch.zeros(batch_size, 3, int(input_hw[0]), int(input_hw[1]))
    with warnings.catch_warnings(), torch.no_grad(), _writing(path):
        # torch.jit announces its deprecation on every call; tracing still is the portable format asked for.
        warnings.filterwarnings("ignore", category=FutureWarning)
        # The exported model's parity is checked by the tests, so skip trace's slower re-run check.
        traced = torch.jit.trace(model, dummy, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA_FILE: json.dumps(metadata)})
    return path


def load_torchscript(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an exported TorchScript file and its parsed metadata."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"TorchScript file {path} does not exist: export one with tools/export_torchscript.py")
    extra_files = {TORCHSCRIPT_METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra_files)
    raw = extra_files[TORCHSCRIPT_METADATA_FILE]
    metadata = parse_metadata(json.loads(raw)) if raw else {}
    return module, metadata
