"""Two CPU processes (gloo) through launch(): identical weights on both ranks, and crash propagation."""

import fcntl
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from yolox.cli.train import build_exp, make_parser
from yolox.core import WorkerError, launch
from yolox.core.launch import is_peer_loss, root_cause
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


def _peer_error_reaches_the_launcher_first(lock_file: str) -> None:
    """Rank 0 fails with a lost-peer error and has exited before rank 1 raises its own error, the cause.

    This is the order that misled the launcher under load, made certain: rank 1 waits for the lock that
    rank 0 holds until its process is gone (the kernel releases it on exit), then raises.
    """
    # A bare descriptor, never closed by Python: only the end of the process releases the lock.
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    if dist.get_rank() == 0:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        dist.barrier()
        raise dist.DistNetworkError("Connection closed by peer [127.0.0.1]:29500")
    dist.barrier()
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    raise ValueError("boom on rank 1")


def _user_error_exit_on_rank_1() -> None:
    """Rank 1 prints its own error and exits with code 2, as train_worker does; rank 0 then loses its peer."""
    if dist.get_rank() == 1:
        raise SystemExit(2)
    dist.barrier()


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_failing_rank_stops_all_and_shows_its_error() -> None:
    with pytest.raises(WorkerError) as caught:
        launch(_fail_on_rank_1, 2, backend="gloo")
    assert "rank 1 failed" in str(caught.value) and "boom on rank 1" in str(caught.value)
    assert caught.value.exit_code == 1


@pytest.mark.slow
def test_the_root_cause_is_reported_even_when_a_peer_error_arrives_first(tmp_path: Path) -> None:
    with pytest.raises(WorkerError) as caught:
        launch(_peer_error_reaches_the_launcher_first, 2, backend="gloo", args=(str(tmp_path / "rank0.lock"),))
    message = str(caught.value)
    assert message.startswith("rank 1 failed") and "ValueError: boom on rank 1" in message
    assert "Connection closed by peer" not in message


@pytest.mark.slow
def test_a_rank_that_reported_its_own_error_gives_the_exit_code() -> None:
    with pytest.raises(WorkerError) as caught:
        launch(_user_error_exit_on_rank_1, 2, backend="gloo")
    assert str(caught.value) == "" and caught.value.exit_code == 2


def test_root_cause_prefers_own_errors_then_the_earliest() -> None:
    peer = {"rank": 0, "time": 1.0, "peer_loss": True, "exit_code": 1, "traceback": "closed by peer"}
    late_own = {"rank": 1, "time": 5.0, "peer_loss": False, "exit_code": 1, "traceback": "ValueError"}
    early_own = {"rank": 3, "time": 2.0, "peer_loss": False, "exit_code": 1, "traceback": "KeyError"}
    assert root_cause([peer, late_own]) is late_own
    assert root_cause([late_own, peer, early_own]) is early_own
    assert root_cause([peer]) is peer and root_cause([]) is None
    assert is_peer_loss(RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2]:4321"))
    assert is_peer_loss(dist.DistNetworkError("timed out")) and not is_peer_loss(ValueError("closed by peer"))


def _slurm_task_environment(rank: int, job_id: int) -> dict[str, str]:
    """What ``srun --ntasks 2`` gives task ``rank`` on one node, without any torchrun variable."""
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("SLURM_") and key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                               "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    environ.update(SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank), SLURM_NODEID="0",
                   SLURM_JOB_ID=str(job_id), SLURM_STEP_ID="0", SLURM_STEP_NODELIST="localhost",
                   SLURM_STEP_TASKS_PER_NODE="2", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return environ


def _job_id_with_a_free_port() -> int:
    """A job id whose rendezvous port (20000 + id % 20000) is free right now."""
    from yolox.core.launch import find_free_port

    for _ in range(200):
        port = find_free_port()
        if 20000 <= port < 40000:
            return port - 20000
    pytest.skip("no free port between 20000 and 40000")


@pytest.mark.slow  # two training processes; about 20 s
def test_two_srun_tasks_form_one_group_and_train(make_exp_file) -> None:
    import subprocess
    import sys

    exp_file = make_exp_file(max_epoch=1)
    job_id = _job_id_with_a_free_port()
    command = [sys.executable, str(Path(__file__).resolve().parents[2] / "tools" / "train.py"), "-f", str(exp_file),
               "-b", "4", "--device", "cpu", "warmup_epochs", "0", "no_aug_epochs", "0"]
    tasks = [subprocess.Popen(command, env=_slurm_task_environment(rank, job_id), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs
    log = (Path(exp_file).parent / "out" / "tiny" / "train_log.txt").read_text()
    assert "2 per process x 2" in log
    assert f"2 tasks join one process group at localhost:{20000 + job_id}" in outputs[0]
    assert torch.load(Path(exp_file).parent / "out" / "tiny" / "last_epoch_ckpt.pth", weights_only=True)["iteration"] == 3


def test_inconsistent_slurm_variables_stop_train_and_eval_with_their_names(make_exp_file, monkeypatch,
                                                                          capsys) -> None:
    from yolox.cli import eval as eval_cli
    from yolox.cli import train as train_cli

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in _slurm_task_environment(2, 1).items():
        if key.startswith("SLURM_"):
            monkeypatch.setenv(key, value)
    assert train_cli.main(["-f", str(make_exp_file()), "-b", "4", "--device", "cpu"]) == 2
    assert eval_cli.main(["-f", str(make_exp_file()), "-b", "4", "--device", "cpu"]) == 2
    for line in capsys.readouterr().err.strip().splitlines():
        assert "SLURM_PROCID=2 must be below SLURM_NTASKS=2" in line, line
    assert "RANK" not in os.environ


def test_device_cuda_n_means_one_process(make_exp_file, monkeypatch, capsys) -> None:
    from yolox.cli import train as train_cli

    started = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(train_cli, "launch", lambda main_func, processes, **kwargs: started.append(processes))
    exp_file = str(make_exp_file())
    assert train_cli.main(["-f", exp_file, "-b", "4", "--device", "cuda:3"]) == 0
    assert train_cli.main(["-f", exp_file, "-b", "4", "--device", "cuda"]) == 0
    assert started == [1, 4]
    assert train_cli.main(["-f", exp_file, "-b", "4", "--device", "cuda:3", "-d", "2"]) == 2
    assert "--device cuda:3 names one GPU but -d 2" in capsys.readouterr().err
