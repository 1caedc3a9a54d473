"""Logging set-up: loguru to the console and to a file in the run's folder, from rank 0 only, in one format.

Records bound with ``file_only`` (see :func:`log_to_file`: the arguments, the exp table) go to the log file
and reach the console only when it was set up ``verbose``.
"""

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

LOG_FORMAT = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> | <level>{level: <8}</level> | <level>{message}</level>"
FILE_ONLY = "file_only"
_handler_ids: list[int] = []
_console_paused = False  # set while collect_warnings() takes the warnings off the console


def _remove_handlers() -> None:
    """Remove the handlers added here before and loguru's own default one."""
    for handler_id in _handler_ids + [0]:  # 0 is loguru's default stderr handler
        try:
            logger.remove(handler_id)
        except ValueError:
            pass
    _handler_ids.clear()


def _not_file_only(record: dict[str, Any]) -> bool:
    return not record["extra"].get(FILE_ONLY, False) and not _console_paused


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """The messages of the warnings logged inside the block, kept off the console of :func:`setup_console_logger`."""
    global _console_paused
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(message.record["message"]), level="WARNING")
    _console_paused = True
    try:
        yield messages
    finally:
        _console_paused = False
        logger.remove(sink)


def setup_console_logger() -> None:
    """Log to stderr in the commands' one format (INFO and up) until a run folder's :func:`setup_logger`."""
    _remove_handlers()
    _handler_ids.append(logger.add(sys.stderr, format=LOG_FORMAT, level="INFO", filter=_not_file_only))


def setup_logger(save_dir: str | Path, distributed_rank: int = 0, filename: str = "log.txt", mode: str = "a",
                 verbose: bool = False) -> Path:
    """Send logs to stderr and ``<save_dir>/<filename>`` on rank 0; other ranks print warnings and errors only.

    ``verbose`` also shows the file-only records on the console. Calling it again (a second run in the same
    process) replaces the handlers it added before. Returns the log file's path.
    """
    _remove_handlers()
    save_path = Path(save_dir) / filename
    if distributed_rank == 0:
        save_path.parent.mkdir(parents=True, exist_ok=True)
        if mode == "o" and save_path.exists():
            save_path.unlink()
        _handler_ids.append(logger.add(sys.stderr, format=LOG_FORMAT, level="INFO", enqueue=False,
                                       filter=None if verbose else _not_file_only))
        _handler_ids.append(logger.add(save_path, format=LOG_FORMAT, level="INFO", colorize=False))
    else:
        rank_format = f"[rank {distributed_rank}] " + LOG_FORMAT
        _handler_ids.append(logger.add(sys.stderr, format=rank_format, level="WARNING"))
    return save_path


def setup_group_logger(save_dirs: Sequence[str | Path], labels: Sequence[str], distributed_rank: int = 0,
                       filename: str = "log.txt", verbose: bool = False) -> list[Path]:
    """:func:`setup_logger` for the members of a lockstep group, one ``<save_dir>/<filename>`` each.

    A record logged under ``logger.contextualize(member=label)`` goes to that member's file only, every other
    record to all of them; the console shows each record once, its member's label first. Returns the paths.
    """
    _remove_handlers()
    paths = [Path(save_dir) / filename for save_dir in save_dirs]
    if distributed_rank != 0:
        _handler_ids.append(logger.add(sys.stderr, format=f"[rank {distributed_rank}] " + LOG_FORMAT, level="WARNING"))
        return paths
    _handler_ids.append(logger.add(sys.stderr, format=_console_format, level="INFO", enqueue=False,
                                   filter=None if verbose else _not_file_only))
    for path, label in zip(paths, labels):
        path.parent.mkdir(parents=True, exist_ok=True)
        _handler_ids.append(logger.add(path, format=LOG_FORMAT, level="INFO", colorize=False,
                                       filter=lambda record, label=label: record["extra"].get("member", label) == label))
    return paths


def _console_format(record: Any) -> str:
    """The console's format of a lockstep group's record: the member's label first when it has one."""
    prefix = "<cyan>[{extra[member]}]</cyan> " if "member" in record["extra"] else ""
    return prefix + LOG_FORMAT + "\n{exception}"


def log_to_file(text: str) -> None:
    """Log ``text`` to the run's log file only (and to the console when the logger was set up ``verbose``)."""
    logger.bind(**{FILE_ONLY: True}).info(text)
