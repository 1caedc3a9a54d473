"""Small file helpers shared by the package: JSON written so that readers never see half a file."""

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomically(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON to a temporary file beside ``path`` and rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The process id keeps two processes writing the same file from sharing a temporary.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    os.replace(temporary, target)
