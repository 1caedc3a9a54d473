"""The run folder's checkpoint names and the one rule for which checkpoint a finished training left."""

from pathlib import Path

from yolox.utils.run_files import BEST_CKPT, LAST_EPOCH_CKPT, LATEST_CKPT, checkpoint_file, trained_checkpoints


def test_checkpoint_names_are_the_trainer_file_names():
    assert (BEST_CKPT, LATEST_CKPT, LAST_EPOCH_CKPT) == ("best_ckpt.pth", "latest_ckpt.pth", "last_epoch_ckpt.pth")
    assert checkpoint_file("epoch_3") == "epoch_3_ckpt.pth"


def test_trained_checkpoints_names_only_the_files_that_exist(tmp_path: Path):
    assert trained_checkpoints(tmp_path / "missing") == {}
    (tmp_path / "latest_ckpt.pth").write_bytes(b"")  # an interrupted run: nothing finished
    assert trained_checkpoints(tmp_path) == {}
    (tmp_path / "last_epoch_ckpt.pth").write_bytes(b"")
    assert trained_checkpoints(tmp_path) == {"last": tmp_path / "last_epoch_ckpt.pth"}
    (tmp_path / "best_ckpt.pth").write_bytes(b"")
    assert list(trained_checkpoints(tmp_path).items()) == [("last", tmp_path / "last_epoch_ckpt.pth"),
                                                           ("best", tmp_path / "best_ckpt.pth")]
