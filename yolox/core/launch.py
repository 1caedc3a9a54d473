"""Start one training process per device with the ``env://`` rendezvous that torchrun also uses, or join the
group that torchrun or SLURM's ``srun`` started."""

import json
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from loguru import logger

from yolox.utils.dist import slurm_process_group_env
from yolox.utils.errors import CommandFailed, UserError
from yolox.utils.files import write_json_atomically

# Long enough for rank 0 to evaluate or cache a dataset while the others wait in a collective.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)
# After a worker fails with a communication error, how long the others may take to report their own error
# (the usual root cause) before they are stopped.
ROOT_CAUSE_GRACE_S = 30.0
STOP_GRACE_S = 10.0
# Words of the errors a collective raises when a peer process went away; they are consequences, not causes.
PEER_LOSS_WORDS = ("connection closed by peer", "connection reset by peer", "broken pipe", "connection refused",
                   "communicator was aborted", "socket timeout", "connection timed out")


class WorkerError(CommandFailed):
    """A spawned training process failed; ``exit_code`` is what the command should exit with."""


def find_free_port() -> int:
    """A TCP port on this machine that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launched_by_torchrun() -> bool:
    """True when the environment already describes a process group (torchrun or a cluster launcher)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def adopt_slurm_environment() -> bool:
    """Under ``srun`` (SLURM's task variables set, torchrun's not) describe SLURM's group in torchrun's variables.

    Returns True when this process is one task of such a group. Inconsistent SLURM variables raise a
    UserError naming them; a batch script that asked for several tasks but runs the command itself (without
    srun) trains as one process, with a warning.
    """
    group = slurm_process_group_env(os.environ)
    if group is None:
        tasks = os.environ.get("SLURM_NTASKS", "1")
        if "SLURM_STEP_ID" not in os.environ and tasks.isdigit() and int(tasks) > 1 and "RANK" not in os.environ:
            logger.warning(f"SLURM_NTASKS={tasks} but this process was not started by srun (no SLURM_STEP_ID): "
                           f"running as one process; start the command with srun to use the {tasks} tasks")
        return False
    os.environ.update(group)
    if group["RANK"] == "0":
        logger.info(f"SLURM job: {group['WORLD_SIZE']} tasks join one process group at "
                    f"{group['MASTER_ADDR']}:{group['MASTER_PORT']}")
    return True


def external_world_size() -> int | None:
    """The world size that torchrun or ``srun`` gave this process, or None when the command starts its own."""
    adopt_slurm_environment()
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else None


def _master_from_url(dist_url: str | None, num_machines: int) -> tuple[str, int]:
    """MASTER_ADDR and MASTER_PORT from ``tcp://host:port`` (or a free local port on one machine)."""
    if dist_url is None or dist_url == "auto":
        if num_machines > 1:
            raise UserError("--dist-url tcp://<address of machine 0>:<port> is needed when --num_machines > 1")
        return "127.0.0.1", find_free_port()
    if not dist_url.startswith("tcp://") or ":" not in dist_url[len("tcp://") :]:
        raise UserError(f"--dist-url {dist_url!r} is not of the form tcp://<host>:<port>")
    host, port = dist_url[len("tcp://") :].rsplit(":", 1)
    return host, int(port)


def init_process_group(backend: str) -> None:
    """Join the group described by RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT; pin this process's GPU.

    The GPU is LOCAL_RANK modulo the visible GPUs: under ``srun --gpus-per-task 1`` each task sees one.
    """
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % max(torch.cuda.device_count(), 1))
    dist.init_process_group(backend=backend, init_method="env://", timeout=PROCESS_GROUP_TIMEOUT)


def is_peer_loss(err: BaseException) -> bool:
    """True for an error that says another process of the group went away (a consequence, not a cause)."""
    text = str(err).lower()
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError)
                                               and any(words in text for words in PEER_LOSS_WORDS))


def _record_failure(error_dir: str, rank: int, err: BaseException) -> None:
    """Write this rank's failure where the launcher reads it: time, kind, exit code and traceback."""
    if isinstance(err, SystemExit):
        code = err.code if isinstance(err.code, int) else 1
        text, peer_loss = "", False  # the worker printed its error itself before exiting
    else:
        code, peer_loss = 1, is_peer_loss(err)
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    record = {"rank": rank, "time": time.time(), "exit_code": code, "peer_loss": peer_loss, "traceback": text}
    write_json_atomically(os.path.join(error_dir, f"rank{rank}.json"), record)


def _worker(local_rank: int, main_func: Callable, world_size: int, local_size: int, machine_rank: int,
            backend: str, args: tuple, error_dir: str) -> None:
    """Entry point of one spawned process: set its rank variables, join the group, run ``main_func``.

    A failure is recorded before the process group is torn down, so a peer that fails because this
    process left can never be reported ahead of it.
    """
    rank = machine_rank * local_size + local_rank
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(local_size),
    )
    init_process_group(backend)
    try:
        main_func(*args)
    except SystemExit as err:
        if err.code not in (None, 0):
            _record_failure(error_dir, rank, err)
        raise
    except Exception as err:
        _record_failure(error_dir, rank, err)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _read_failures(error_dir: str) -> list[dict]:
    """The failures the workers recorded."""
    records = []
    for name in sorted(os.listdir(error_dir)):
        if name.endswith(".json"):
            with open(os.path.join(error_dir, name), encoding="utf-8") as stream:
                records.append(json.load(stream))
    return records


def root_cause(failures: list[dict]) -> dict | None:
    """The failure to report: a worker's own error before a lost-peer error, then the earliest, then the lowest rank."""
    if not failures:
        return None
    return min(failures, key=lambda record: (record["peer_loss"], record["time"], record["rank"]))


def _wait_for_workers(processes: list, error_dir: str) -> None:
    """Wait for every worker; on a failure stop the rest, once the root cause is known or the grace is over."""
    pending = {process.sentinel: process for process in processes}
    deadline = None
    while pending:
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        ready = multiprocessing.connection.wait(list(pending), timeout=timeout)
        if not ready:
            break
        for sentinel in ready:
            process = pending.pop(sentinel)
            process.join()
            if process.exitcode == 0:
                continue
            if any(not record["peer_loss"] for record in _read_failures(error_dir)):
                deadline = time.monotonic()  # the cause is known: stop the others now
            elif deadline is None:
                deadline = time.monotonic() + ROOT_CAUSE_GRACE_S
        if deadline is not None and time.monotonic() >= deadline:
            break
    for process in pending.values():
        if process.is_alive():
            process.terminate()
    for process in pending.values():
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()


def _raise_worker_failure(processes: list, error_dir: str) -> None:
    """Raise :class:`WorkerError` for the root cause of a failed run; return when every worker succeeded."""
    cause = root_cause(_read_failures(error_dir))
    if cause is not None:
        if not cause["traceback"]:
            raise WorkerError("", cause["exit_code"])  # the worker printed its error itself
        raise WorkerError(f"rank {cause['rank']} failed (the other processes were stopped):\n{cause['traceback']}", 1)
    for rank, process in enumerate(processes):
        code = process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            raise WorkerError(f"rank {rank} was killed by signal {name} (out of memory?)", 1)
        if code:
            raise WorkerError(f"rank {rank} exited with code {code}", code)


def _note_interrupt(signum: int, frame: Any) -> None:
    """SIGINT in the launcher: say that the workers are saving; they got the signal too."""
    os.write(sys.stderr.fileno(), b"interrupt: waiting for the workers to save and stop\n")


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    backend: str = "nccl",
    dist_url: str | None = None,
    args: tuple = (),
) -> None:
    """Run ``main_func(*args)`` in ``num_gpus_per_machine * num_machines`` processes (or in this one).

    Under torchrun (RANK, WORLD_SIZE, ... already set) or as a task of ``srun`` (SLURM_PROCID, SLURM_NTASKS,
    ...) this process joins that group and runs ``main_func`` itself; ``num_gpus_per_machine`` is then not
    used. With a world size of 1 it runs ``main_func`` directly. Otherwise it spawns one
    process per local device; if any of them fails the others are stopped and a :class:`WorkerError` carries
    the failing rank's error.
    """
    if external_world_size() is not None:
        if int(os.environ["WORLD_SIZE"]) == 1:
            main_func(*args)
            return
        init_process_group(backend)
        try:
            main_func(*args)
        finally:
            dist.destroy_process_group()
        return
    world_size = num_gpus_per_machine * num_machines
    if world_size < 1:
        raise UserError(f"-d/--devices must be at least 1, got {num_gpus_per_machine}")
    if world_size == 1:
        main_func(*args)
        return
    if backend == "nccl" and torch.cuda.device_count() < num_gpus_per_machine:
        raise UserError(
            f"-d {num_gpus_per_machine} asks for more GPUs than the {torch.cuda.device_count()} visible here"
        )
    master_addr, master_port = _master_from_url(dist_url, num_machines)
    saved_env = {key: os.environ.get(key) for key in ("MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))
    logger.info(f"starting {num_gpus_per_machine} processes ({backend}, world size {world_size}, master {master_addr}:{master_port})")
    # Ctrl-C reaches the workers too: they save and exit, the parent only waits for them. The handler only
    # writes to the file descriptor: a logging call could re-enter a lock held where the signal arrived.
    previous_handler = signal.signal(signal.SIGINT, _note_interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="yolox_launch_") as error_dir:
            context = mp.start_processes(
                _worker,
                args=(main_func, world_size, num_gpus_per_machine, machine_rank, backend, args, error_dir),
                nprocs=num_gpus_per_machine,
                join=False,
                start_method="spawn",
            )
            _wait_for_workers(context.processes, error_dir)
            _raise_worker_failure(context.processes, error_dir)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
