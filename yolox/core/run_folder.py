"""The run folder of a training: leased while it trains (:mod:`yolox.core.lease`), never overwritten silently.

A training without ``--resume`` into a folder that holds another run's checkpoints stops, naming the folder
and the choices; ``--overwrite`` moves the old run aside to ``<name>.replaced-<time>`` first and says so,
on the console and in the new run's ``train_log.txt``.
"""

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

from yolox.core.lease import LEASE_FILE, RunLease
from yolox.utils.dist import all_gather_object
from yolox.utils.errors import UserError
from yolox.utils.logger import setup_logger

TRAIN_LOG = "train_log.txt"


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints (``*_ckpt.pth``) a run left in ``run_dir``."""
    return sorted(run_dir.glob("*_ckpt.pth")) if run_dir.is_dir() else []


def replaced_folder(run_dir: Path, now: datetime.datetime) -> Path:
    """``<name>.replaced-<UTC time>`` beside ``run_dir`` (with ``-2``, ``-3``, ... when taken)."""
    base = run_dir.with_name(f"{run_dir.name}.replaced-{now.strftime('%Y%m%d-%H%M%S')}")
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def move_run_aside(run_dir: Path) -> Path:
    """Move everything of ``run_dir`` but its lease into a fresh ``<name>.replaced-<time>`` folder beside it."""
    aside = replaced_folder(run_dir, datetime.datetime.now(datetime.timezone.utc))
    aside.mkdir()
    for entry in sorted(run_dir.iterdir()):
        if entry.name == LEASE_FILE or entry.name.startswith(f".{LEASE_FILE}."):
            continue
        os.rename(entry, aside / entry.name)
    return aside


def check_new_run(run_dir: Path, resume: bool, overwrite: bool, ckpt: str | None) -> tuple[str | None, str | None]:
    """Refuse a new run into a folder holding another run's checkpoints, or move that run aside (``overwrite``).

    Returns the line to log about a move (None without one) and the ``-c`` checkpoint to use: a checkpoint
    inside the moved run is followed to its new place.
    """
    if resume and overwrite:
        raise UserError("--overwrite starts a new run and --resume continues one: use one of them")
    found = run_checkpoints(run_dir)
    if resume or not found:
        return None, ckpt
    if not overwrite:
        names = ", ".join(path.name for path in found[:4]) + (", ..." if len(found) > 4 else "")
        raise UserError(f"run folder {run_dir} holds another run's checkpoints ({names}): add --resume to continue "
                        f"it, use another -expn for a new run, or add --overwrite to move it aside to "
                        f"{run_dir.name}.replaced-<time>")
    aside = move_run_aside(run_dir)
    if ckpt is not None:
        source = Path(ckpt).resolve()
        if source.is_relative_to(run_dir.resolve()):
            ckpt = str(aside / source.relative_to(run_dir.resolve()))
    return f"--overwrite: the previous run in {run_dir} was moved to {aside}", ckpt


@contextmanager
def training_run_folder(run_dir: Path, resume: bool, overwrite: bool, ckpt: str | None,
                        rank: int) -> Iterator[str | None]:
    """Hold ``run_dir`` for a training: rank 0 takes the lease and checks the folder, every rank shares the
    outcome (the same error everywhere, or the ``-c`` checkpoint to load, which is what the block gets)."""
    lease, error = None, None
    if rank == 0:
        try:
            lease = RunLease(run_dir).acquire()
            note, ckpt = check_new_run(run_dir, resume, overwrite, ckpt)
            if note is not None:
                # The new run's log file exists from here on, so the move is its first line.
                setup_logger(run_dir, distributed_rank=0, filename=TRAIN_LOG, mode="a")
                logger.warning(note)
        except UserError as err:
            error = str(err)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        if error is not None and lease is not None:
            lease.release()
    error, ckpt = all_gather_object((error, ckpt))[0]
    if error is not None:
        raise UserError(error)
    try:
        yield ckpt
    finally:
        if lease is not None:
            lease.release()
