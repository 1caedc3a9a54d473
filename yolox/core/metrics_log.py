"""``metrics.jsonl``: one JSON object per line for each print interval and each evaluation of a run.

The file is opened in append mode and flushed after every line, so a run that crashes keeps every
record written before the crash, and a resumed run adds to the same file.
"""

import json
import math
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"

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


class MetricsWriter:
    """Appends records to ``<run_dir>/metrics.jsonl``; each line has ``kind``, ``time`` and the given fields."""

    def __init__(self, run_dir: str | Path) -> None:
        """Open (or create) the run's metrics file for appending."""
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        """Append one ``kind`` record ("train" or "eval") and flush it to disk."""
        record = {"kind": kind, "time": round(time.time(), 3), **_plain(fields)}
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; later writes raise."""
        self._file.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file; a torn last line (a run killed mid-write) is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
