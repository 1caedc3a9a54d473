"""The pictures of a training run: curves.png from metrics.jsonl and val_predictions.jpg on fixed images."""

from pathlib import Path

import cv2
import torch

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer, run_pictures
from yolox.core.run_pictures import curve_series, prediction_grid


def test_curve_series_keeps_the_last_record_of_an_iteration_and_skips_missing_figures():
    records = [
        {"kind": "train", "epoch": 1, "iteration": 10, "total_loss": 5.0, "iou_loss": 2.0, "lr": 0.001},
        {"kind": "train", "epoch": 1, "iteration": 20, "total_loss": 4.0, "iou_loss": 1.5, "lr": 0.002},
        {"kind": "eval", "epoch": 1, "iteration": 20, "ap50_95": 0.1, "ap50": None},
        # A resumed run writes iteration 20 again: the later record is the one that counts.
        {"kind": "train", "epoch": 1, "iteration": 20, "total_loss": 3.5, "iou_loss": 1.25, "lr": 0.002},
        {"kind": "train", "epoch": 2, "iteration": 30, "total_loss": 3.0, "iou_loss": 1.0, "lr": 0.003},
        {"kind": "eval", "epoch": 2, "iteration": 40, "ap50_95": 0.25, "ap50": 0.5},
        {"kind": "something else", "iteration": 50, "total_loss": 99.0},
    ]
    series = curve_series(records)
    assert series["total_loss"] == {"x": [10, 20, 30], "y": [5.0, 3.5, 3.0]}
    assert series["iou_loss"] == {"x": [10, 20, 30], "y": [2.0, 1.25, 1.0]}
    assert series["lr"] == {"x": [10, 20, 30], "y": [0.001, 0.002, 0.003]}
    assert series["ap50_95"] == {"x": [20, 40], "y": [0.1, 0.25]}
    assert series["ap50"] == {"x": [40], "y": [0.5]}
    assert set(series) == {"total_loss", "iou_loss", "lr", "ap50_95", "ap50"}


def _train(exp_file: Path) -> Trainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", "4", "--device", "cpu"])
    trainer = Trainer(build_exp(args), args)
    trainer.train()
    return trainer


def test_training_writes_the_curves_and_the_validation_picture(make_exp_file, shapes_dir) -> None:
    trainer = _train(make_exp_file(max_epoch=2))
    run_dir = Path(trainer.file_name)
    curves = cv2.imread(str(run_dir / "curves.png"))
    assert curves is not None and curves.shape == (400, 1500, 3)
    # The picture is the last evaluation's model on the first validation images (4 of 64 x 64, 3 per row).
    exp = trainer.exp
    model = exp.get_model()
    model.load_state_dict(torch.load(run_dir / "latest_ckpt.pth", weights_only=True)["model"])
    model.eval()
    images = [record.path for record in trainer.evaluator.dataloader.dataset.records[:6]]
    assert len(images) == 4
    grid, counts = prediction_grid(model, exp, images, torch.device("cpu"))
    assert grid.shape == (128, 192, 3) and len(counts) == 4
    assert (run_dir / "val_predictions.jpg").read_bytes() == cv2.imencode(".jpg", grid)[1].tobytes()


def test_without_matplotlib_one_line_says_so_and_the_validation_picture_is_still_drawn(make_exp_file,
                                                                                     monkeypatch) -> None:
    monkeypatch.setattr(run_pictures, "load_pyplot", lambda: None)
    trainer = _train(make_exp_file(max_epoch=2))
    run_dir = Path(trainer.file_name)
    log = (run_dir / "train_log.txt").read_text()
    assert log.count('curves.png is not drawn: pictures need matplotlib: pip install -e ".[plot]"') == 1
    assert not (run_dir / "curves.png").exists() and (run_dir / "val_predictions.jpg").is_file()
