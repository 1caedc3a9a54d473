"""Small helpers over torch.distributed that also work when no process group exists (a single process)."""

import os
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from yolox.utils.errors import UserError

# Set by torchrun (or any launcher that already describes the group): they win over SLURM's.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
NODELIST_VARIABLES = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
# The rendezvous port of a SLURM job, unless MASTER_PORT is set: SLURM_PORT_BASE + job id modulo the span,
# so the tasks of one job agree on it without talking, and two jobs sharing a node rarely collide.
SLURM_PORT_BASE = 20000
SLURM_PORT_SPAN = 20000


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_world_size() -> int:
    """Number of processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without a group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine, from ``LOCAL_RANK`` as set by torchrun or ``launch``."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on the process that writes files and logs (global rank 0)."""
    return get_rank() == 0


def all_gather_object(obj: Any) -> list[Any]:
    """Return ``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def any_across_ranks(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of boolean ``flags`` over all ranks, so every rank takes the same decision."""
    if not is_distributed():
        return list(flags)
    values = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM host list: ``gpu[03-04,07],cpu1`` -> ``gpu03`` (zero padding kept)."""
    text = nodelist.strip()
    if not text or text.count("[") != text.count("]"):
        raise ValueError(f"not a SLURM host list: {nodelist!r}")
    first = re.split(r",(?![^\[]*\])", text)[0]
    return re.sub(r"\[([^\]]*)\]", lambda group: group.group(1).split(",")[0].split("-")[0], first)


def tasks_on_node(tasks_per_node: str, node: int) -> int:
    """Tasks on node ``node`` from SLURM's ``8(x2),4`` notation (8 on nodes 0 and 1, 4 on node 2)."""
    counts: list[int] = []
    for part in tasks_per_node.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if match is None:
            raise ValueError(f"not a SLURM tasks-per-node list: {tasks_per_node!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    if not 0 <= node < len(counts):
        raise ValueError(f"node {node} is not in the tasks-per-node list {tasks_per_node!r}")
    return counts[node]


def slurm_process_group_env(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) from SLURM's.

    None when this process is no SLURM task (no SLURM_PROCID / SLURM_NTASKS), when torchrun's variables are
    already set, for the batch script itself (rank 0 without SLURM_STEP_ID: not started by ``srun``) and for
    a step of one task (``-d N`` then starts its processes as usual).
    The rendezvous host is the first of the step's node list, the port comes from the job id (MASTER_ADDR
    and MASTER_PORT win when set). Inconsistent or missing variables raise a UserError naming them.
    """
    if "SLURM_PROCID" not in environ or "SLURM_NTASKS" not in environ:
        return None
    if any(key in environ for key in TORCHRUN_VARIABLES):
        return None
    values: dict[str, int] = {}
    problems = []
    for key in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_JOB_ID"):
        raw = environ.get(key, environ.get("SLURM_JOBID") if key == "SLURM_JOB_ID" else None)
        if raw is None:
            if key in ("SLURM_LOCALID", "SLURM_JOB_ID"):
                problems.append(f"{key} is not set")
            continue
        if not raw.strip().isdigit():
            problems.append(f"{key}={raw!r} is not a whole number >= 0")
            continue
        values[key] = int(raw)
    if values.get("SLURM_PROCID") == 0 and ("SLURM_STEP_ID" not in environ or values.get("SLURM_NTASKS") == 1):
        return None  # the batch script itself, or a one-task step: no group to join, -d still applies
    if problems:
        raise UserError(_slurm_message(problems))
    rank, world_size, local_rank = values["SLURM_PROCID"], values["SLURM_NTASKS"], values["SLURM_LOCALID"]
    if world_size < 1:
        problems.append(f"SLURM_NTASKS={world_size} must be at least 1")
    elif rank >= world_size:
        problems.append(f"SLURM_PROCID={rank} must be below SLURM_NTASKS={world_size}")
    if local_rank > rank:
        problems.append(f"SLURM_LOCALID={local_rank} cannot exceed SLURM_PROCID={rank}")
    local_world_size = None
    per_node = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if per_node:
        try:
            local_world_size = tasks_on_node(per_node, values.get("SLURM_NODEID", 0))
        except ValueError as err:
            problems.append(f"SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE / SLURM_NODEID: {err}")
        else:
            if local_rank >= local_world_size:
                problems.append(f"SLURM_LOCALID={local_rank} must be below the {local_world_size} tasks of "
                                f"this node (SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE={per_node!r})")
    master_addr = environ.get("MASTER_ADDR")
    if not master_addr:
        nodelist = next((environ[key] for key in NODELIST_VARIABLES if environ.get(key)), None)
        if nodelist is None:
            problems.append(f"none of {', '.join(NODELIST_VARIABLES)} is set, so the rendezvous host is unknown "
                            "(or set MASTER_ADDR)")
        else:
            try:
                master_addr = first_slurm_host(nodelist)
            except ValueError as err:
                problems.append(f"{err} (from {'/'.join(NODELIST_VARIABLES)})")
    if problems:
        raise UserError(_slurm_message(problems))
    port = environ.get("MASTER_PORT") or str(SLURM_PORT_BASE + values["SLURM_JOB_ID"] % SLURM_PORT_SPAN)
    group = {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank),
             "MASTER_ADDR": str(master_addr), "MASTER_PORT": port}
    if local_world_size is not None:
        group["LOCAL_WORLD_SIZE"] = str(local_world_size)
    return group


def _slurm_message(problems: list[str]) -> str:
    """One line for inconsistent SLURM variables, with the fix."""
    return (f"inconsistent SLURM task variables: {'; '.join(problems)}. Start the command with srun (one task "
            "per process), or unset the SLURM_* variables to run a single process")
