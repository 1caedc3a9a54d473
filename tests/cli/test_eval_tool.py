"""tools/eval.py on CPU: speed mode, a checkpoint evaluation with its results file, and clear user errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from loguru import logger

from yolox.cli import eval as eval_cli
from yolox.data.shapes import SHAPE_CLASSES, generate_shapes_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
EVAL_TOOL = REPO_ROOT / "tools" / "eval.py"


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    """A 4-image validation set of the built-in shapes."""
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=0, num_val=4, img_size=96, seed=2)


@pytest.fixture
def eval_tool():
    """The tool's library module (tools/eval.py only forwards to it); loguru's handlers are put back after."""
    yield eval_cli
    logger.remove()
    logger.add(sys.stderr)


def overrides(shapes_dir: Path, output_dir: Path) -> list[str]:
    """Exp overrides pointing yolox-nano at the shapes set."""
    return ["data_dir", str(shapes_dir), "val_ann", "instances_val.json", "val_name", "val", "num_classes", "5",
            "output_dir", str(output_dir), "data_num_workers", "0"]  # fmt: skip


def run_tool(args: list[str]) -> subprocess.CompletedProcess:
    """Run tools/eval.py in a fresh interpreter with one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(EVAL_TOOL), *args], capture_output=True, text=True, env=env, timeout=300)


def test_speed_mode_runs_on_cpu_without_checkpoint(shapes_dir, tmp_path) -> None:
    """--speed needs no checkpoint and writes the timings to eval_results.json."""
    done = run_tool(["-n", "yolox-nano", "--tsize", "64", "--speed", "--device", "cpu", "-b", "2",
                     *overrides(shapes_dir, tmp_path)])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Average forward time" in done.stderr
    results = json.loads((tmp_path / "yolox_nano" / "eval_results.json").read_text())
    assert results["mode"] == "speed" and results["ckpt"] is None and results["test_size"] == [64, 64]
    assert results["timing"]["forward_ms"] > 0 and results["timing"]["images"] > 0
    assert (tmp_path / "yolox_nano" / "val_log.txt").is_file()


def test_checkpoint_evaluation_writes_results(shapes_dir, tmp_path, eval_tool) -> None:
    """An official-layout checkpoint ({"model": state dict}) is scored; the figures land in the JSON file."""
    from yolox.exp import get_exp

    exp = get_exp(exp_name="yolox-nano")
    exp.num_classes = 5
    ckpt = tmp_path / "nano5.pth"
    torch.save({"model": exp.get_model().state_dict(), "start_epoch": 3}, ckpt)
    code = eval_tool.main(["-n", "yolox-nano", "-c", str(ckpt), "--tsize", "64", "--device", "cpu", "-b", "4",
                           "--conf", "0.00001", "-expn", "nano_shapes", "--plots", "--plots-conf", "0.0",
                           *overrides(shapes_dir, tmp_path)])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "nano_shapes" / "eval_results.json").read_text())
    assert results["mode"] == "eval" and results["ckpt"] == str(ckpt) and results["exp"] == "yolox-nano"
    assert 0.0 <= results["ap50_95"] <= results["ap50"] <= 1.0
    assert set(results["per_class_AP"]) == set(SHAPE_CLASSES) and len(results["stats"]) == 12
    assert results["timing"]["total_ms"] >= results["timing"]["nms_ms"]
    # --plots: the pictures and their numbers; every object is in its true class's column once (found or missed).
    plots = tmp_path / "nano_shapes" / "eval_plots"
    assert {path.name for path in plots.iterdir()} == {"eval_plots.json", "pr_curves.png", "confusion_matrix.png"}
    numbers = json.loads((plots / "eval_plots.json").read_text())
    counts = numbers["confusion_matrix"]["counts"]
    annotations = json.loads((shapes_dir / "annotations" / "instances_val.json").read_text())["annotations"]
    per_class = [sum(1 for ann in annotations if ann["category_id"] == index + 1) for index in range(5)]
    assert [sum(row[c] for row in counts) for c in range(5)] == per_class and numbers["confusion_matrix"]["conf"] == 0.0
    assert numbers["pr_curves"]["iou"]["0.50"]["all"]["ap"] == pytest.approx(results["ap50"], abs=1e-12)


def test_checkpoint_for_another_model_is_explained(shapes_dir, tmp_path, eval_tool, capsys) -> None:
    """An 80-class checkpoint against a 5-class exp names both class counts and suggests the exp file."""
    from yolox.exp import get_exp

    ckpt = tmp_path / "nano80.pth"
    torch.save({"model": get_exp(exp_name="yolox-nano").get_model().state_dict()}, ckpt)
    code = eval_tool.main(["-n", "yolox-nano", "-c", str(ckpt), "--tsize", "64", "--device", "cpu",
                           *overrides(shapes_dir, tmp_path)])  # fmt: skip
    message = capsys.readouterr().err
    assert code == 2
    assert "num_classes=80" in message and "num_classes=5" in message and "-f" in message


def test_bad_tsize_and_unknown_categories_are_user_errors(shapes_dir, tmp_path, eval_tool, capsys) -> None:
    """--tsize off the stride grid and annotations with more categories than the exp both exit with code 2."""
    assert eval_tool.main(["-n", "yolox-nano", "--tsize", "50", "--speed", *overrides(shapes_dir, tmp_path)]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    wrong_classes = overrides(shapes_dir, tmp_path)
    wrong_classes[wrong_classes.index("num_classes") + 1] = "3"
    assert eval_tool.main(["-n", "yolox-nano", "--tsize", "64", "--speed", "--device", "cpu", *wrong_classes]) == 2
    assert "num_classes" in capsys.readouterr().err


def test_a_failed_detections_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    import numpy as np

    data_dir = tmp_path / "data"
    (data_dir / "annotations").mkdir(parents=True)
    (data_dir / "annotations" / "instances_val.json").write_text("{}")
    dataset = SimpleNamespace(data_dir=str(data_dir), json_file="instances_val.json")
    evaluator = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset), class_ids=[1, 2])
    report = SimpleNamespace(detections={7: np.array([[1.0, 2.0, 11.0, 22.0, 0.9, 0.8, 1.0]])})
    target = tmp_path / "runs" / "detections.npz"
    eval_cli.save_detections(evaluator, report, target)
    written = target.read_bytes()
    assert np.load(target)["results"].tolist() == [[7.0, 1.0, 2.0, 10.0, 20.0, pytest.approx(0.72), 2.0]]

    def full_disk(stream, **arrays) -> None:
        stream.write(b"half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError):
        eval_cli.save_detections(evaluator, report, target)
    assert target.read_bytes() == written and [path.name for path in target.parent.iterdir()] == ["detections.npz"]
