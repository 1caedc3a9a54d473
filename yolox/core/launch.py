"""Start one training process per device with the ``env://`` rendezvous that torchrun also uses."""

import os
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from loguru import logger

from yolox.utils.errors import UserError

# Long enough for rank 0 to evaluate or cache a dataset while the others wait in a collective.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)


class WorkerError(RuntimeError):
    """A spawned training process failed; ``exit_code`` is what the command should exit with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def find_free_port() -> int:
    """A TCP port on this machine that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launched_by_torchrun() -> bool:
    """True when the environment already describes a process group (torchrun or a cluster launcher)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


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
    """Join the group described by RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT; pin this process's GPU."""
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, init_method="env://", timeout=PROCESS_GROUP_TIMEOUT)


def _worker(local_rank: int, main_func: Callable, world_size: int, local_size: int, machine_rank: int,
            backend: str, args: tuple) -> None:
    """Entry point of one spawned process: set its rank variables, join the group, run ``main_func``."""
    os.environ.update(
        RANK=str(machine_rank * local_size + local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(local_size),
    )
    init_process_group(backend)
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()


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

    Under torchrun (RANK, WORLD_SIZE, ... already set) this process joins that group and runs
    ``main_func`` itself. With a world size of 1 it runs ``main_func`` directly. Otherwise it spawns one
    process per local device; if any of them fails the others are stopped and a :class:`WorkerError` carries
    the failing rank's error.
    """
    if launched_by_torchrun():
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
    # Ctrl-C reaches the workers too: they save and exit, the parent only waits for them.
    previous_handler = signal.signal(signal.SIGINT, lambda *_: logger.warning("interrupt: waiting for the workers to save and stop"))
    try:
        context = mp.start_processes(
            _worker,
            args=(main_func, world_size, num_gpus_per_machine, machine_rank, backend, args),
            nprocs=num_gpus_per_machine,
            join=False,
            start_method="spawn",
        )
        try:
            while not context.join():
                pass
        except mp.ProcessRaisedException as err:
            raise WorkerError(f"rank {err.error_index} failed (the other processes were stopped):\n{err}", 1) from None
        except mp.ProcessExitedException as err:
            if err.exit_code is not None and err.exit_code > 0:
                # The worker reported its error itself before exiting with this code.
                raise WorkerError("", err.exit_code) from None
            raise WorkerError(f"rank {err.error_index} was killed by signal {err.signal_name} (out of memory?)", 1) from None
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
