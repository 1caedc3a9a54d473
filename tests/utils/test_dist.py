"""torch.distributed helpers: single-process fallbacks and a real two-process gloo group."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.dist import (
    all_gather_object,
    any_across_ranks,
    get_local_rank,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
)


def test_helpers_without_a_process_group(monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not is_distributed()
    assert (get_world_size(), get_rank(), get_local_rank()) == (1, 0, 0)
    assert is_main_process()
    assert all_gather_object({"a": 1}) == [{"a": 1}]
    assert any_across_ranks([True, False], torch.device("cpu")) == [True, False]
    norm = nn.BatchNorm2d(2)
    norm.running_mean.fill_(3.0)
    all_reduce_norm(norm)
    assert torch.equal(norm.running_mean, torch.full((2,), 3.0))
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert get_local_rank() == 3


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Linear(1, 1))
        model[1].running_mean.fill_(float(rank))  # ranks 0 and 1: the mean is 0.5
        model[1].running_var.fill_(2.0 + 2 * rank)  # 2 and 4: the mean is 3
        all_reduce_norm(model)
        result = {
            "distributed": is_distributed(),
            "world": get_world_size(),
            "rank": get_rank(),
            "gathered": all_gather_object(f"from {rank}"),
            "any": any_across_ranks([rank == 1, False], torch.device("cpu")),
            "mean": model[1].running_mean.clone(),
            "var": model[1].running_var.clone(),
        }
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_helpers_in_a_two_process_gloo_group(tmp_path: Path) -> None:
    mp.start_processes(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["distributed"] and result["world"] == 2 and result["rank"] == rank
        assert result["gathered"] == ["from 0", "from 1"]
        assert result["any"] == [True, False]
        assert torch.equal(result["mean"], torch.full((2,), 0.5))
        assert torch.equal(result["var"], torch.full((2,), 3.0))
