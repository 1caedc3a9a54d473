"""Run leases: one holder at a time, live holders named, stale ones taken over, released on every way out."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from loguru import logger

from yolox.core.lease import LEASE_FILE, RunLease, RunLeaseHeld, read_holder
from yolox.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0  # the injected wall clock of these tests (2027-01-15 08:00:00 UTC)


def write_lease(run_dir: Path, host: str, pid: int, heartbeat: float = NOW, start: float = NOW - 100) -> bytes:
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = json.dumps({"host": host, "pid": pid, "start": start, "heartbeat": heartbeat, "token": "theirs"}).encode()
    (run_dir / LEASE_FILE).write_bytes(raw)
    return raw


@pytest.fixture()
def warnings():
    messages: list[str] = []
    handler = logger.add(lambda message: messages.append(message.record["message"]), level="WARNING")
    yield messages
    logger.remove(handler)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lease_file_names_the_holder_and_goes_at_the_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "a"
    with RunLease(run_dir, clock=lambda: NOW).acquire() as lease:
        record = json.loads((run_dir / LEASE_FILE).read_text())
        assert record["host"] == socket.gethostname() and record["pid"] == os.getpid()
        assert record["start"] == record["heartbeat"] == NOW and record["token"] == lease.token
    assert not (run_dir / LEASE_FILE).exists()


@pytest.mark.parametrize("way_out", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_the_lease_is_released_on_an_error_and_on_ctrl_c(tmp_path: Path, way_out: type) -> None:
    with pytest.raises(way_out):
        with RunLease(tmp_path).acquire():
            raise way_out()
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_live_holder_elsewhere_is_named_and_its_lease_left_alone(tmp_path: Path) -> None:
    raw = write_lease(tmp_path, "gpu07", 4242, heartbeat=NOW - 42)
    with pytest.raises(RunLeaseHeld) as held:
        RunLease(tmp_path, clock=lambda: NOW).acquire()
    message = str(held.value)
    assert "host gpu07, pid 4242, since 2027-01-15 07:58:20 UTC (last heartbeat 42 s ago)" in message
    assert str(tmp_path) in message and "\n" not in message
    assert (tmp_path / LEASE_FILE).read_bytes() == raw


def test_a_live_process_on_this_host_holds_its_lease(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lease(tmp_path, socket.gethostname(), sleeper.pid)
        with pytest.raises(RunLeaseHeld, match=f"pid {sleeper.pid}"):
            RunLease(tmp_path, clock=lambda: NOW).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lease_whose_process_is_gone_is_taken_over_with_a_warning(tmp_path: Path, warnings) -> None:
    pid = dead_pid()
    write_lease(tmp_path, socket.gethostname(), pid)
    with RunLease(tmp_path, clock=lambda: NOW).acquire() as lease:
        assert json.loads((tmp_path / LEASE_FILE).read_text())["token"] == lease.token
    assert any(f"pid {pid}" in message and "its process is gone" in message for message in warnings), warnings


def test_a_lease_without_heartbeat_for_too_long_is_taken_over(tmp_path: Path, warnings) -> None:
    write_lease(tmp_path, "gpu07", 4242, heartbeat=NOW - 601)
    with RunLease(tmp_path, stale_after=600, clock=lambda: NOW).acquire() as lease:
        assert json.loads((tmp_path / LEASE_FILE).read_text())["token"] == lease.token
    assert any("no heartbeat for 601 s" in message for message in warnings), warnings
    write_lease(tmp_path, "gpu07", 4242, heartbeat=NOW - 599)
    with pytest.raises(RunLeaseHeld):
        RunLease(tmp_path, stale_after=600, clock=lambda: NOW).acquire()


def test_the_lease_of_a_slurm_job_before_its_requeue_is_taken_over(tmp_path: Path, monkeypatch, warnings) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "7781")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    record = {"host": "gpu07", "pid": 4242, "start": NOW, "heartbeat": NOW, "token": "theirs", "slurm_job": "7781",
              "slurm_restart": 0}
    (tmp_path / LEASE_FILE).write_text(json.dumps(record))
    with RunLease(tmp_path, clock=lambda: NOW).acquire():
        mine = json.loads((tmp_path / LEASE_FILE).read_text())
        assert mine["slurm_job"] == "7781" and mine["slurm_restart"] == 1
    assert any("its SLURM job 7781 has been requeued since" in message for message in warnings), warnings
    (tmp_path / LEASE_FILE).write_text(json.dumps({**record, "slurm_restart": 1}))  # a task of this very run
    with pytest.raises(RunLeaseHeld):
        RunLease(tmp_path, clock=lambda: NOW).acquire()
    (tmp_path / LEASE_FILE).write_text(json.dumps({**record, "slurm_job": "7790"}))  # another job
    with pytest.raises(RunLeaseHeld):
        RunLease(tmp_path, clock=lambda: NOW).acquire()


def test_a_lease_naming_this_process_that_it_does_not_hold_is_an_earlier_process_of_the_same_id(
        tmp_path: Path, warnings) -> None:
    write_lease(tmp_path, socket.gethostname(), os.getpid())
    with RunLease(tmp_path, clock=lambda: NOW).acquire():
        pass
    assert any("taking over" in message for message in warnings)


def test_an_unreadable_lease_counts_as_live_until_it_is_old(tmp_path: Path) -> None:
    (tmp_path / LEASE_FILE).write_text("")  # what a reader may see while the file is being created
    mtime = (tmp_path / LEASE_FILE).stat().st_mtime
    with pytest.raises(RunLeaseHeld, match="an unreadable run.lock last written"):
        RunLease(tmp_path, clock=lambda: mtime + 5).acquire()
    with RunLease(tmp_path, clock=lambda: mtime + 601).acquire():
        assert read_holder(tmp_path / LEASE_FILE)[0].readable


def test_the_holder_and_its_launcher_nest(tmp_path: Path) -> None:
    with RunLease(tmp_path).acquire() as outer:
        inner = RunLease(tmp_path).acquire()
        assert inner.nested and not outer.nested
        inner.release()
        assert json.loads((tmp_path / LEASE_FILE).read_text())["token"] == outer.token
    # A worker of ``-d N`` finds the lease of the process that started it.
    raw = write_lease(tmp_path, socket.gethostname(), os.getppid(), heartbeat=NOW)
    with RunLease(tmp_path, clock=lambda: NOW).acquire() as worker:
        assert worker.nested
    assert (tmp_path / LEASE_FILE).read_bytes() == raw


def test_of_two_processes_taking_over_one_stale_lease_the_late_one_leaves_the_new_lease(tmp_path: Path) -> None:
    stale = write_lease(tmp_path, "gpu07", 4242, heartbeat=NOW - 3600)
    holder = read_holder(tmp_path / LEASE_FILE)[0]
    late = RunLease(tmp_path, clock=lambda: NOW)
    with RunLease(tmp_path, clock=lambda: NOW).acquire() as first:
        fresh = (tmp_path / LEASE_FILE).read_bytes()
        late._take_over(holder, stale)  # judged stale before the first one replaced it
        assert (tmp_path / LEASE_FILE).read_bytes() == fresh
        assert json.loads(fresh)["token"] == first.token
        assert sorted(path.name for path in tmp_path.iterdir()) == [LEASE_FILE]


def test_the_heartbeat_is_refreshed_by_a_background_thread(tmp_path: Path) -> None:
    clock = iter(range(int(NOW), int(NOW) + 10**6))
    lease = RunLease(tmp_path, heartbeat_every=0.001, clock=lambda: float(next(clock)))
    beaten = threading.Event()
    refresh = lease.beat

    def beat() -> bool:
        alive = refresh()
        beaten.set()
        return alive

    lease.beat = beat
    with lease.acquire():
        assert beaten.wait(30)
        record = json.loads((tmp_path / LEASE_FILE).read_text())
        assert record["heartbeat"] > record["start"] and record["token"] == lease.token


def test_a_holder_whose_lease_was_taken_stops_beating_and_leaves_the_new_lease(tmp_path: Path, warnings) -> None:
    errors: list[str] = []
    handler = logger.add(lambda message: errors.append(message.record["message"]), level="ERROR")
    try:
        lease = RunLease(tmp_path, clock=lambda: NOW).acquire()
        raw = write_lease(tmp_path, "gpu07", 4242)
        assert lease.beat() is False and lease.lost
        lease.release()
    finally:
        logger.remove(handler)
    assert (tmp_path / LEASE_FILE).read_bytes() == raw
    assert any("taken over (now held by host gpu07, pid 4242" in message for message in errors), errors


@pytest.mark.slow  # starts an interpreter
def test_a_process_killed_with_sigkill_leaves_a_lease_that_goes_stale(tmp_path: Path, warnings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from yolox.core.lease import RunLease; "
         "RunLease(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLeaseHeld, match=f"pid {holder.pid}"):
            RunLease(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert read_holder(tmp_path / LEASE_FILE)[0].pid == holder.pid
    with RunLease(tmp_path).acquire():
        pass
    assert any(f"pid {holder.pid}" in message and "its process is gone" in message for message in warnings)


def test_a_lease_that_cannot_be_written_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(UserError, match=f"cannot write to the run folder {tmp_path}: .*no space left"):
        RunLease(tmp_path).acquire()
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
