"""Run leases: a run folder is trained by one process at a time.

The holder of a run folder writes ``run.lock`` there (host, pid, start time, token and a heartbeat that a
background thread refreshes every 30 s). Another process that finds a live lease leaves the run alone
(:class:`RunLeaseHeld`). A lease is stale when its heartbeat is older than 10 minutes, when its process is
gone on this very host, or when it was taken by an earlier run of this SLURM job (requeued after a
pre-emption, perhaps onto another node); a stale lease is taken over with a warning. The lease is released on every way
out of the ``with`` block (normal end, error, Ctrl-C); a process killed with SIGKILL leaves one that goes
stale. A lease held by this process, or by the process that started it (the launcher of ``-d N``, a study
running the training in-process), is this training's own: acquiring it again nests.
"""

import datetime
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from loguru import logger

from yolox.utils.checkpoint import describe_write_error
from yolox.utils.errors import UserError
from yolox.utils.files import write_json_atomically

LEASE_FILE = "run.lock"
HEARTBEAT_EVERY_S = 30.0
STALE_AFTER_S = 600.0
# Each attempt either wins, finds a live holder, or saw the file change under it; a few are plenty.
ACQUIRE_ATTEMPTS = 10

_held_here: dict[Path, "RunLease"] = {}  # the leases this process holds, by lease file


@dataclass(frozen=True)
class LeaseHolder:
    """What a ``run.lock`` says about its holder (``readable`` False: the file could not be parsed)."""

    host: str
    pid: int
    start: float
    heartbeat: float
    token: str
    readable: bool = True
    slurm_job: str | None = None  # SLURM_JOB_ID and SLURM_RESTART_COUNT of the holder, under SLURM
    slurm_restart: int = 0

    def describe(self, now: float) -> str:
        """``host H, pid P, since <UTC time> (last heartbeat N s ago)``."""
        if not self.readable:
            return f"an unreadable {LEASE_FILE} last written {_utc(self.heartbeat)}"
        return (f"host {self.host}, pid {self.pid}, since {_utc(self.start)} "
                f"(last heartbeat {max(now - self.heartbeat, 0.0):.0f} s ago)")


class RunLeaseHeld(UserError):
    """The run folder is leased by another live training."""

    def __init__(self, run_dir: Path, holder: LeaseHolder, now: float, stale_after: float) -> None:
        self.run_dir = run_dir
        self.holder = holder
        self.holder_text = holder.describe(now)
        super().__init__(f"run folder {run_dir} is being trained by another process ({self.holder_text}): wait "
                         f"for it to end or use another -expn; a lease without a heartbeat for {stale_after:.0f} s "
                         "is taken over")


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def process_alive(pid: int) -> bool:
    """True when a process of that id exists on this host (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slurm_job() -> tuple[str | None, int]:
    """This process's SLURM job id (None outside SLURM) and how often the job was requeued."""
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return os.environ.get("SLURM_JOB_ID"), int(restart) if restart.isdigit() else 0


def read_holder(path: Path) -> tuple[LeaseHolder, bytes] | None:
    """The holder named by the lease file ``path`` and the file's bytes; None when there is no lease file."""
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        record = json.loads(raw)
        holder = LeaseHolder(str(record["host"]), int(record["pid"]), float(record["start"]),
                             float(record["heartbeat"]), str(record["token"]), slurm_job=record.get("slurm_job"),
                             slurm_restart=int(record.get("slurm_restart", 0)))
    except (ValueError, KeyError, TypeError):
        # Being created (empty for an instant) or damaged: its age alone says whether it is live.
        holder = LeaseHolder("", -1, mtime, mtime, "", readable=False)
    return holder, raw


class RunLease:
    """The lease of one run folder; use as ``with RunLease(folder).acquire(): ...``.

    ``heartbeat_every``, ``stale_after`` and ``clock`` are the timings (seconds, and the wall clock giving
    them), injectable so that tests need not wait.
    """

    def __init__(self, run_dir: str | os.PathLike, heartbeat_every: float = HEARTBEAT_EVERY_S,
                 stale_after: float = STALE_AFTER_S, clock: Callable[[], float] = time.time) -> None:
        """A lease of ``run_dir`` (not yet acquired)."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEASE_FILE
        self.heartbeat_every = heartbeat_every
        self.stale_after = stale_after
        self.clock = clock
        self.host = socket.gethostname()
        self.token = secrets.token_hex(8)
        self.nested = False
        self.lost = False
        self._record: dict = {}
        self._released = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ acquiring
    def acquire(self) -> "RunLease":
        """Take the lease (creating the folder), or raise :class:`RunLeaseHeld` naming the live holder."""
        key = self.path.resolve()
        if key in _held_here and not _held_here[key]._released.is_set():
            self.nested = True
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise self._unwritable(err) from None
        holder = None
        for _ in range(ACQUIRE_ATTEMPTS):
            if self._create():
                _held_here[key] = self
                self._start_heartbeat()
                return self
            found = read_holder(self.path)
            if found is None:
                continue  # released in the meantime
            holder, raw = found
            if self._held_by_launcher(holder):
                self.nested = True
                return self
            if self.stale_reason(holder) is None:
                raise RunLeaseHeld(self.run_dir, holder, self.clock(), self.stale_after)
            self._take_over(holder, raw)
        raise RunLeaseHeld(self.run_dir, holder or LeaseHolder("?", -1, 0.0, 0.0, ""), self.clock(), self.stale_after)

    def stale_reason(self, holder: LeaseHolder) -> str | None:
        """Why ``holder``'s lease is stale (its heartbeat is too old, its process is gone from this host, its
        SLURM job was requeued since), or None when it is live.

        A lease naming this very process that it does not hold was left by an earlier process of the same id
        (ids repeat, in containers above all).
        """
        silent = self.clock() - holder.heartbeat
        if silent > self.stale_after:
            return f"no heartbeat for {silent:.0f} s"
        if holder.readable and holder.host == self.host and (holder.pid == os.getpid()
                                                             or not process_alive(holder.pid)):
            return "its process is gone"
        job, restart = slurm_job()
        if holder.slurm_job is not None and holder.slurm_job == job and holder.slurm_restart < restart:
            return f"its SLURM job {job} has been requeued since"
        return None

    def _held_by_launcher(self, holder: LeaseHolder) -> bool:
        """True when the process that started this one (``-d N``'s launcher, a study) holds a live lease."""
        fresh = self.clock() - holder.heartbeat <= self.stale_after
        return fresh and holder.readable and holder.host == self.host and holder.pid == os.getppid()

    def _create(self) -> bool:
        """Create the lease file exclusively with this process's record; False when one exists."""
        now = self.clock()
        self._record = {"host": self.host, "pid": os.getpid(), "start": now, "heartbeat": now, "token": self.token}
        job, restart = slurm_job()
        if job is not None:
            self._record.update(slurm_job=job, slurm_restart=restart)
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        except OSError as err:
            raise self._unwritable(err) from None
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(json.dumps(self._record) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as err:  # a full disk: no half-written lease may stay behind
            self.path.unlink(missing_ok=True)
            raise self._unwritable(err) from None
        return True

    def _unwritable(self, err: OSError) -> UserError:
        return UserError(f"cannot write to the run folder {self.run_dir}: {describe_write_error(err)}; choose a "
                         "writable output_dir (exp key) or -expn")

    def _take_over(self, holder: LeaseHolder, raw: bytes) -> None:
        """Remove the stale lease ``raw`` (as read), unless another process changed the file meanwhile.

        The file is first renamed aside, so that of two processes taking over at once only one removes it; a
        lease renamed aside that is not the one judged stale (a fresh one) is put back.
        """
        aside = self.path.with_name(f".{LEASE_FILE}.{self.token}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if aside.read_bytes() != raw:
            if not self.path.exists():
                os.rename(aside, self.path)
            else:
                aside.unlink()
            return
        aside.unlink()
        logger.warning(f"{self.run_dir}: taking over the stale lease of {holder.describe(self.clock())}: "
                       f"{self.stale_reason(holder)}")

    # ------------------------------------------------------------------ holding
    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat_until_released, name=f"lease {self.run_dir.name}",
                                        daemon=True)
        self._thread.start()

    def _beat_until_released(self) -> None:
        while not self._released.wait(self.heartbeat_every):
            if not self.beat():
                return

    def beat(self) -> bool:
        """Refresh the heartbeat; False (and an error logged) when another process has taken the lease."""
        found = read_holder(self.path)
        if found is None or found[0].token != self.token:
            self.lost = True
            taker = found[0].describe(self.clock()) if found else "nobody (the file is gone)"
            logger.error(f"{self.run_dir}: this process's lease was taken over (now held by {taker}); another "
                         "training may write this run's files")
            return False
        try:
            write_json_atomically(self.path, {**self._record, "heartbeat": self.clock()}, indent=None)
        except OSError as err:  # a passing file-system error: the next beat tries again
            logger.warning(f"{self.path}: heartbeat not written ({err})")
        return True

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file, when this process created it and still holds it."""
        if self.nested or self._released.is_set():
            return
        self._released.set()
        if self._thread is not None:
            self._thread.join()
        _held_here.pop(self.path.resolve(), None)
        found = read_holder(self.path)
        if found is not None and found[0].token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLease":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
