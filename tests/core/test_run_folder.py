"""tools/train.py and the run folder: no silent overwrite, --overwrite moves the old run aside, leased runs refused."""

import datetime
import json
import os
from pathlib import Path

import pytest
import torch

from yolox.cli.train import main
from yolox.core.lease import LEASE_FILE
from yolox.core.run_folder import check_new_run, replaced_folder
from yolox.utils.errors import UserError

ONE_EPOCH = ("warmup_epochs", "0", "no_aug_epochs", "0")


def train(exp_file: Path, *flags: str) -> int:
    return main(["-f", str(exp_file), "-b", "4", "--device", "cpu", *flags, *ONE_EPOCH])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture()
def finished_run(make_exp_file, tmp_path: Path) -> tuple[Path, Path]:
    """A tiny exp file and the folder of its finished one-epoch run."""
    exp_file = make_exp_file(max_epoch=1)
    assert train(exp_file) == 0
    run_dir = tmp_path / "out" / "tiny"
    assert (run_dir / "last_epoch_ckpt.pth").is_file() and not (run_dir / LEASE_FILE).exists()
    return exp_file, run_dir


@pytest.mark.slow  # two short trainings
def test_a_new_run_into_a_finished_runs_folder_is_refused_and_overwrite_moves_it_aside(finished_run, capsys) -> None:
    exp_file, run_dir = finished_run
    before = folder_bytes(run_dir)
    capsys.readouterr()
    assert train(exp_file) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"run folder {run_dir} holds another run's checkpoints" in error
    assert "--resume" in error and "another -expn" in error and "--overwrite" in error and "tiny.replaced-" in error
    assert folder_bytes(run_dir) == before  # checkpoints, metrics and log untouched

    assert train(exp_file, "--overwrite") == 0
    moved = sorted(run_dir.parent.glob("tiny.replaced-*"))
    assert len(moved) == 1 and folder_bytes(moved[0]) == before
    line = f"--overwrite: the previous run in {run_dir} was moved to {moved[0]}"
    assert line in capsys.readouterr().err
    log = (run_dir / "train_log.txt").read_text().splitlines()
    assert line in log[0]  # the first line of the new run's own log
    assert torch.load(run_dir / "last_epoch_ckpt.pth", weights_only=True)["iteration"] == 3
    assert [record["iteration"] for record in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if record["kind"] == "train"] == [1, 2, 3]


def test_resume_of_a_run_leased_elsewhere_is_one_line_naming_the_holder(make_exp_file, tmp_path: Path,
                                                                       capsys) -> None:
    run_dir = tmp_path / "out" / "tiny"
    run_dir.mkdir(parents=True)
    lease = {"host": "gpu07", "pid": 4242, "start": 1_800_000_000.0, "heartbeat": 4e9, "token": "theirs"}
    (run_dir / LEASE_FILE).write_text(json.dumps(lease))
    assert train(make_exp_file(max_epoch=1), "--resume") == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"run folder {run_dir} is being trained by another process (host gpu07, pid 4242, since 2027-01-15" in error
    assert sorted(path.name for path in run_dir.iterdir()) == [LEASE_FILE]


def test_resume_removes_stale_temporaries_even_when_it_then_fails(make_exp_file, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "out" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "latest_ckpt.pth").write_bytes(b"not a checkpoint")
    stale = run_dir / ".latest_ckpt.pth.k3j4h5.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert train(make_exp_file(max_epoch=1), "--resume") == 2
    assert "latest_ckpt.pth" in capsys.readouterr().err
    assert not stale.exists() and not (run_dir / LEASE_FILE).exists()


def test_overwrite_and_resume_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="use one of them"):
        check_new_run(tmp_path, resume=True, overwrite=True, ckpt=None)


def test_a_folder_without_checkpoints_takes_a_new_run_and_a_resume_needs_no_choice(tmp_path: Path) -> None:
    (tmp_path / "train_log.txt").write_text("a run that stopped before its first checkpoint\n")
    assert check_new_run(tmp_path, resume=False, overwrite=False, ckpt=None) == (None, None)
    (tmp_path / "latest_ckpt.pth").write_bytes(b"x")
    assert check_new_run(tmp_path, resume=True, overwrite=False, ckpt=None) == (None, None)


def test_overwrite_keeps_the_lease_and_follows_a_checkpoint_of_the_moved_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "base"
    (run_dir / "tensorboard").mkdir(parents=True)
    for name in ("best_ckpt.pth", "metrics.jsonl", LEASE_FILE, f".{LEASE_FILE}.abc.tmp"):
        (run_dir / name).write_text(name)
    note, ckpt = check_new_run(run_dir, resume=False, overwrite=True, ckpt=str(run_dir / "best_ckpt.pth"))
    aside = next(tmp_path.glob("base.replaced-*"))
    assert sorted(os.listdir(aside)) == ["best_ckpt.pth", "metrics.jsonl", "tensorboard"]
    assert sorted(os.listdir(run_dir)) == [f".{LEASE_FILE}.abc.tmp", LEASE_FILE]
    assert ckpt == str(aside / "best_ckpt.pth") and Path(ckpt).read_text() == "best_ckpt.pth"
    assert note == f"--overwrite: the previous run in {run_dir} was moved to {aside}"


def test_a_replaced_name_already_taken_gets_a_number(tmp_path: Path) -> None:
    when = datetime.datetime(2027, 1, 15, 8, 0, 0, tzinfo=datetime.timezone.utc)
    assert replaced_folder(tmp_path / "base", when) == tmp_path / "base.replaced-20270115-080000"
    (tmp_path / "base.replaced-20270115-080000").mkdir()
    assert replaced_folder(tmp_path / "base", when) == tmp_path / "base.replaced-20270115-080000-2"
