"""Logging set-up: loguru to the console and to a file in the run's folder, from rank 0 only."""

import sys
from pathlib import Path

from loguru import logger

LOG_FORMAT = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> | <level>{level: <8}</level> | <level>{message}</level>"
_handler_ids: list[int] = []


def setup_logger(save_dir: str | Path, distributed_rank: int = 0, filename: str = "log.txt", mode: str = "a") -> Path:
    """Send logs to stderr and ``<save_dir>/<filename>`` on rank 0; other ranks print warnings and errors only.

    Calling it again (a second run in the same process) replaces the handlers it added before. Returns the
    log file's path.
    """
    for handler_id in _handler_ids + [0]:  # 0 is loguru's default stderr handler
        try:
            logger.remove(handler_id)
        except ValueError:
            pass
    _handler_ids.clear()
    save_path = Path(save_dir) / filename
    if distributed_rank == 0:
        save_path.parent.mkdir(parents=True, exist_ok=True)
        if mode == "o" and save_path.exists():
            save_path.unlink()
        _handler_ids.append(logger.add(sys.stderr, format=LOG_FORMAT, level="INFO", enqueue=False))
        _handler_ids.append(logger.add(save_path, format=LOG_FORMAT, level="INFO", colorize=False))
    else:
        rank_format = f"[rank {distributed_rank}] " + LOG_FORMAT
        _handler_ids.append(logger.add(sys.stderr, format=rank_format, level="WARNING"))
    return save_path
