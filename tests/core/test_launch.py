"""Two CPU processes (gloo) through launch(): identical weights on both ranks, and crash propagation."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from yolox.core import WorkerError, launch
from yolox.cli.train import build_exp, make_parser
from yolox.utils.ema import unwrap_model


def _train_and_dump(argv: list[str], dump_dir: str) -> None:
    """One rank: train the tiny exp, then save this rank's raw weights and batch split."""
    torch.set_num_threads(1)
    args = make_parser().parse_args(argv)
    trainer = build_exp(args).get_trainer(args)
    trainer.train()
    rank = dist.get_rank()
    torch.save({"state": unwrap_model(trainer.model).state_dict(), "per_rank_batch": trainer.per_rank_batch,
                "world_size": dist.get_world_size(), "iterations": trainer.completed_iters},
               Path(dump_dir) / f"rank{rank}.pt")


def _fail_on_rank_1() -> None:
    """Rank 1 raises while rank 0 waits in a collective that would never finish on its own."""
    if dist.get_rank() == 1:
        raise ValueError("boom on rank 1")
    dist.barrier()


def test_two_gloo_processes_keep_identical_weights(make_exp_file, tmp_path: Path) -> None:
    exp_file = make_exp_file(max_epoch=2)
    argv = ["-f", str(exp_file), "-b", "4", "-d", "2", "--device", "cpu", "warmup_epochs", "0"]
    launch(_train_and_dump, 2, backend="gloo", args=(argv, str(tmp_path)))
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0["world_size"] == 2 and rank0["per_rank_batch"] == 2 and rank0["iterations"] == 6
    assert rank0["state"].keys() == rank1["state"].keys()
    for name, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][name]), name
    run_dir = Path(exp_file).parent / "out" / "tiny"
    assert (run_dir / "last_epoch_ckpt.pth").is_file()
    ckpt = torch.load(run_dir / "latest_ckpt.pth", weights_only=True)
    assert len(ckpt["rng_states"]) == 2
    log = (run_dir / "train_log.txt").read_text()
    assert "2 per process x 2" in log


def test_a_failing_rank_stops_all_and_shows_its_error() -> None:
    with pytest.raises(WorkerError) as caught:
        launch(_fail_on_rank_1, 2, backend="gloo")
    assert "rank 1 failed" in str(caught.value) and "boom on rank 1" in str(caught.value)
    assert caught.value.exit_code == 1
