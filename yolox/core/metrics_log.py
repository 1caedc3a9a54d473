"""``metrics.jsonl``: one JSON object per line for each print interval and each evaluation of a run.

The file is opened in append mode and flushed after every line, so a run that crashes keeps every
record written before the crash, and a resumed run adds to the same file (after cutting a line that the
crash left half written).
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

METRICS_FILE = "metrics.jsonl"
RECORD_KINDS = ("train", "eval")

def _plain(value: Any) -> Any:
    """JSON-safe Python value: tensors and numpy scalars as floats, NaN and infinities as None."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a write killed midway, no newline after it) so appended records start cleanly."""
    if not path.is_file():
        return
    with path.open("rb+") as stream:
        size = stream.seek(0, 2)
        if size == 0:
            return
        stream.seek(size - 1)
        if stream.read(1) == b"\n":
            return
        stream.seek(0)
        content = stream.read()
        stream.truncate(content.rfind(b"\n") + 1)


class MetricsWriter:
    """Appends records to ``<run_dir>/metrics.jsonl``; each line has ``kind``, ``time`` and the given fields."""

    def __init__(self, run_dir: str | Path) -> None:
        """Open (or create) the run's metrics file for appending."""
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        """Append one ``kind`` record ("train" or "eval") and flush it to disk."""
        record = {"kind": kind, "time": round(time.time(), 3), **_plain(fields)}
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; later writes raise."""
        self._file.close()


@dataclass
class MetricsFile:
    """What a metrics file holds: its good records, the 1-based line of each, and the numbers of its bad lines."""

    records: list[dict]
    bad_lines: list[int]
    record_lines: list[int]


def parse_metrics(path: str | Path) -> MetricsFile:
    """Read a metrics file, keeping the records that are JSON objects with a ``kind`` of ``train`` or ``eval``.

    A torn last line (no newline at its end: the run was killed while writing it) is dropped silently;
    any other line that is not such a record is counted in ``bad_lines``.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn_tail = lines.pop() if lines else ""  # the text after the last newline: empty unless torn
    records, bad, record_lines = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _record_or_none(line)
        if record is None:
            bad.append(number)
        else:
            records.append(record)
            record_lines.append(number)
    tail = _record_or_none(torn_tail) if torn_tail.strip() else None
    if tail is not None:
        records.append(tail)
        record_lines.append(len(lines) + 1)
    return MetricsFile(records, bad, record_lines)


def _record_or_none(line: str) -> dict | None:
    """The record on one line, or None when it is not a JSON object with a known ``kind``."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("kind") in RECORD_KINDS else None


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file; a torn last line is skipped, other bad lines are skipped with a warning."""
    parsed = parse_metrics(path)
    if parsed.bad_lines:
        shown = ", ".join(str(number) for number in parsed.bad_lines[:5])
        logger.warning(f"{path}: {len(parsed.bad_lines)} line(s) are not metrics records and were skipped "
                       f"(line {shown}{', ...' if len(parsed.bad_lines) > 5 else ''})")
    return parsed.records
