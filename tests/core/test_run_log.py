"""The run log: one log_scalars call reaches the console, metrics.jsonl, TensorBoard and the tracker."""

from pathlib import Path

from loguru import logger

from yolox.core.metrics_log import read_metrics
from yolox.core.run_log import EVAL, TRAIN, RunLog


class FakeBoard:
    """Records add_scalar calls as TensorBoard's SummaryWriter receives them."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, value, step))

    def close(self) -> None:
        pass


class FakeTracker:
    """Records log_scalars calls as the W&B and MLflow loggers receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def log_scalars(self, scalars: dict, step: int) -> None:
        self.calls.append((dict(scalars), step))

    def close(self, run_dir: Path) -> None:
        pass


def _run_log(tmp_path: Path) -> tuple[RunLog, FakeBoard, FakeTracker, list[str]]:
    run_log = RunLog(tmp_path, batch_size=8, writes=True)
    run_log.tensorboard, run_log.tracker = FakeBoard(), FakeTracker()
    run_log.start()
    return run_log, run_log.tensorboard, run_log.tracker, []


def test_a_training_record_reaches_every_writer(tmp_path: Path) -> None:
    run_log, board, tracker, lines = _run_log(tmp_path)
    sink = logger.add(lines.append, format="{message}")
    try:
        run_log.log_scalars(TRAIN, {"total_loss": 2.5, "lr": 0.01}, epoch=2, iteration=30, line="progress",
                            attention={"attn.dark3": {"gate_mean": 0.5, "gate_std": 0.1}})
    finally:
        logger.remove(sink)
    run_log.close()
    assert [line.strip() for line in lines] == ["progress", "attention usage: attn.dark3 gate 0.500+-0.100"]
    assert board.scalars == [("train/total_loss", 2.5, 30), ("train/lr", 0.01, 30),
                             ("attention/attn.dark3/gate_mean", 0.5, 30), ("attention/attn.dark3/gate_std", 0.1, 30)]
    # The trackers get the attention usage under the same names as TensorBoard.
    assert tracker.calls == [({name: value for name, value, _ in board.scalars}, 30)]
    (record,) = read_metrics(tmp_path / "metrics.jsonl")
    assert record["kind"] == "train" and record["epoch"] == 2 and record["iteration"] == 30
    assert record["total_loss"] == 2.5 and record["lr"] == 0.01 and record["images_seen"] == 240
    assert record["attention"] == {"attn.dark3": {"gate_mean": 0.5, "gate_std": 0.1}}


def test_an_evaluation_keeps_the_official_board_names_and_counts_epochs(tmp_path: Path) -> None:
    run_log, board, tracker, _ = _run_log(tmp_path)
    run_log.log_scalars(EVAL, {"ap50_95": 0.3, "ap50": 0.5, "ap75": 0.25}, epoch=4, iteration=40)
    run_log.close()
    assert board.scalars == [("val/COCOAP50", 0.5, 4), ("val/COCOAP50_95", 0.3, 4)]
    assert tracker.calls == [({"val/COCOAP50": 0.5, "val/COCOAP50_95": 0.3}, 4)]
    (record,) = read_metrics(tmp_path / "metrics.jsonl")
    assert record["kind"] == "eval" and record["ap75"] == 0.25 and "attention" not in record


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    run_log = RunLog(tmp_path, batch_size=8, writes=False)
    run_log.start()
    run_log.log_scalars(TRAIN, {"total_loss": 1.0}, epoch=1, iteration=1, line="progress")
    run_log.close()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_tensorboard_files_hold_the_names_the_trackers_get(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_log = RunLog(tmp_path, batch_size=8, writes=True)
    run_log.open_boards("tensorboard", None, None)
    run_log.tracker = tracker = FakeTracker()
    run_log.start()
    usage = {"backbone.attn.dark3": {"gate_mean": 0.25, "gate_std": 0.125, "scale": 0.5}}
    run_log.log_scalars(TRAIN, {"total_loss": 2.0, "lr": 0.0625}, epoch=1, iteration=10, attention=usage)
    run_log.log_scalars(EVAL, {"ap50_95": 0.375, "ap50": 0.5}, epoch=1, iteration=10)
    run_log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    written = {(tag, event.step, event.value) for tag in events.Tags()["scalars"] for event in events.Scalars(tag)}
    sent = {(name, step, value) for scalars, step in tracker.calls for name, value in scalars.items()}
    assert written == sent
    assert {name for name, _, _ in sent} >= {"attention/backbone.attn.dark3/gate_mean",
                                              "attention/backbone.attn.dark3/gate_std",
                                              "attention/backbone.attn.dark3/scale", "val/COCOAP50_95"}


def test_a_missing_tensorboard_names_its_extra(tmp_path: Path, monkeypatch) -> None:
    import sys

    import pytest

    from yolox.utils.errors import UserError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(UserError, match=r"pip install 'yolox-attention\[tensorboard\]'"):
        RunLog(tmp_path, batch_size=8, writes=True).open_boards("tensorboard", None, None)
