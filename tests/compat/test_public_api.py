"""The official YOLOX public names import from the same packages, lazily, and keep their meaning."""

import importlib
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from torch import nn

import yolox.utils as yolox_utils
from yolox.utils.errors import UserError


@pytest.fixture(scope="module")
def official_names(reference_dir) -> dict:
    return json.loads((reference_dir / "official_public_api.json").read_text())["packages"]


def test_every_official_name_imports_from_its_package(official_names):
    missing = [f"{package}.{name}" for package, names in official_names.items()
               for name in names if not hasattr(importlib.import_module(package), name)]
    assert missing == []
    assert sum(len(names) for names in official_names.values()) == 103


def test_official_names_are_listed_in_all(official_names):
    for package, names in official_names.items():
        exported = set(importlib.import_module(package).__all__)
        assert set(names) <= exported, package


def test_importing_utils_and_models_keeps_the_layering():
    code = ("import sys, yolox.utils, yolox.models; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['yolox', 'core'], ['yolox', 'exp'], ['yolox', 'evaluators'], ['yolox', 'data'], ['yolox', 'cli'])))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
    cheap = subprocess.run([sys.executable, "-c", "import sys, yolox.utils; print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert cheap == "False"


def test_unknown_utils_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_helper"):
        yolox_utils.no_such_helper  # noqa: B018


def test_box_helpers_keep_the_official_meaning():
    from yolox.utils import adjust_box_anns, filter_box, matrix_iou

    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=np.float64)
    np.testing.assert_allclose(matrix_iou(boxes, boxes), [[1, 25 / 175], [25 / 175, 1]], atol=1e-9)
    moved = adjust_box_anns(boxes.copy(), 2.0, 1, 3, 20, 25)
    np.testing.assert_allclose(moved, [[1, 3, 20, 23], [11, 13, 20, 25]])
    dets = torch.tensor([[0, 0, 4, 4, 0.9], [0, 0, 20, 20, 0.8], [0, 0, 100, 100, 0.7]])
    assert filter_box(dets, (5, 50))[:, 4].tolist() == pytest.approx([0.8])


def test_numpy_nms_and_demo_decoding():
    from yolox.utils import demo_postprocess, multiclass_nms, nms

    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.85], [0.1, 0.7]], dtype=np.float32)
    assert nms(boxes, scores[:, 0], 0.5) == [0, 2]
    agnostic = multiclass_nms(boxes, scores, nms_thr=0.5, score_thr=0.3)
    assert agnostic[:, 4].tolist() == pytest.approx([0.9, 0.7]) and agnostic[:, 5].tolist() == [0, 1]
    per_class = multiclass_nms(boxes, scores, nms_thr=0.5, score_thr=0.3, class_agnostic=False)
    assert sorted(per_class[:, 4].tolist()) == pytest.approx([0.7, 0.85, 0.9])
    assert multiclass_nms(boxes, scores, 0.5, score_thr=0.95) is None
    raw = np.zeros((1, 4 * 4 + 2 * 2 + 1, 6), dtype=np.float32)  # a 32x32 input: 16 + 4 + 1 anchors
    decoded = demo_postprocess(raw, (32, 32))
    assert decoded is raw
    assert decoded[0, 1, :4].tolist() == [8, 0, 8, 8] and decoded[0, -1, :4].tolist() == [0, 0, 32, 32]


def test_vis_draws_in_place_and_visualize_assign(tmp_path):
    from yolox.utils import random_color, vis, visualize_assign

    img = np.zeros((64, 64, 3), dtype=np.uint8)
    out = vis(img, torch.tensor([[8.0, 8.0, 40.0, 40.0]]), torch.tensor([0.9]), torch.tensor([1.0]), conf=0.5,
              class_names=["a", "b"])
    assert out is img and img.any()
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    vis(blank, np.array([[8, 8, 40, 40]]), np.array([0.2]), np.array([0]), conf=0.5)
    assert not blank.any()
    assert all(0 <= c <= 255 for c in random_color())
    canvas = np.zeros((64, 64, 3), dtype=np.uint8)
    visualize_assign(canvas, np.array([[4, 4, 30, 30]]), np.array([[10, 10], [50, 50]]), np.array([0, -1]),
                     save_name=str(tmp_path / "assign.png"))
    assert canvas[10, 10].any() and not canvas[50, 50].any() and (tmp_path / "assign.png").is_file()


def test_single_process_dist_helpers():
    from yolox.utils import (
        all_gather,
        all_reduce,
        gather,
        get_local_size,
        get_num_devices,
        synchronize,
        time_synchronized,
        wait_for_the_master,
    )

    assert all_gather({"a": 1}) == [{"a": 1}] and gather(3) == [3]
    assert get_local_size() == 1 and get_num_devices() == torch.cuda.device_count()
    synchronize()
    with wait_for_the_master():
        pass
    assert all_reduce({"x": torch.ones(2)}, op="mean")["x"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="op"):
        all_reduce({"x": torch.ones(1)}, op="max")
    assert time_synchronized() > 0


def test_norm_states_and_object_tensors():
    from yolox.utils import get_async_norm_states, is_parallel, pyobj2tensor, tensor2pyobj

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    states = get_async_norm_states(model)
    assert list(states) == ["1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    packed = pyobj2tensor({"k": [1, 2]}, device="cpu")
    assert packed.dtype == torch.uint8 and tensor2pyobj(packed) == {"k": [1, 2]}
    assert not is_parallel(model)


def test_meters_follow_the_official_behaviour():
    from yolox.utils import AverageMeter, MeterBuffer

    meter = AverageMeter(window_size=2)
    for value in (1.0, 5.0, 3.0):
        meter.update(value)
    assert (meter.latest, meter.avg, meter.median, meter.global_avg) == (3.0, 4.0, 4.0, 3.0)
    meter.clear()
    assert meter.global_avg == 3.0  # clear() forgets the window only
    meter.reset()
    assert np.isnan(meter.global_avg)
    buffer = MeterBuffer(window_size=3)
    buffer.update(iter_time=0.5, data_time=0.1, loss=torch.tensor(2.0))
    assert set(buffer.get_filtered_meter("time")) == {"iter_time", "data_time"}
    assert isinstance(buffer["loss"], AverageMeter) and buffer["loss"].latest == 2.0


def test_memory_and_environment_helpers(monkeypatch):
    from yolox.utils import configure_module, configure_nccl, configure_omp, gpu_mem_usage, mem_usage, occupy_mem

    assert mem_usage() > 0
    monkeypatch.delenv("NCCL_LAUNCH_MODE", raising=False)
    configure_nccl()
    assert __import__("os").environ["NCCL_LAUNCH_MODE"] == "PARALLEL"
    monkeypatch.setenv("OPENCV_OPENCL_RUNTIME", "")
    configure_module()
    assert __import__("os").environ["OPENCV_OPENCL_RUNTIME"] == "disabled"
    configure_omp()  # a single process: nothing to change
    if not torch.cuda.is_available():
        assert gpu_mem_usage() == 0.0
        occupy_mem(0)  # logs that there is nothing to reserve
        from yolox.utils import get_total_and_free_memory_in_Mb

        with pytest.raises(RuntimeError, match="CUDA"):
            get_total_and_free_memory_in_Mb(0)


def test_forwarded_names_are_this_projects_implementations():
    from yolox.utils import ModelEMA, bboxes_iou, load_ckpt, postprocess, setup_logger
    from yolox.utils.boxes import postprocess as own_postprocess
    from yolox.utils.checkpoint import load_ckpt as own_load_ckpt

    assert postprocess is own_postprocess and load_ckpt is own_load_ckpt
    assert callable(ModelEMA) and callable(bboxes_iou) and callable(setup_logger)


def test_check_exp_value():
    from yolox.exp import Exp, check_exp_value

    exp = Exp()
    check_exp_value(exp)
    exp.input_size = (640, 630)
    with pytest.raises(UserError, match="input_size"):
        check_exp_value(exp)


def test_lazy_names_resolve_the_same_object_from_threads():
    results = []
    threads = [threading.Thread(target=lambda: results.append(yolox_utils.fuse_model)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(map(id, results))) == 1


def test_defaults_that_official_callers_rely_on():
    import inspect

    ema_defaults = inspect.signature(yolox_utils.ModelEMA).parameters
    assert ema_defaults["decay"].default == 0.9999 and ema_defaults["updates"].default == 0
    logger_defaults = inspect.signature(yolox_utils.setup_logger).parameters
    assert logger_defaults["filename"].default == "log.txt" and logger_defaults["mode"].default == "a"
