"""Small file helpers shared by the package: files written so that readers never see half of one."""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's file-creation mask, read without changing it where the platform allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write; renamed onto ``path`` when the block succeeds.

    When the block (or the rename) fails, the temporary is removed and ``path`` keeps its previous content.
    The temporary is ``.<name>.<random>.tmp``: unique per writer, so two processes or threads writing the
    same file never share one, and the last rename wins with a whole file. The file gets the usual
    permissions (0666 less the umask).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed into place."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_image_atomically(path: str | os.PathLike, image: Any) -> None:
    """Encode a BGR ``image`` (numpy, as OpenCV holds it) in the format of ``path``'s suffix and write it atomically."""
    import cv2

    suffix = Path(path).suffix.lower()
    encoded, data = cv2.imencode(suffix, image) if suffix else (False, None)
    if not encoded:
        raise ValueError(f"cannot encode an image as {path}: name it .png or .jpg")
    write_bytes_atomically(path, data.tobytes())


def write_json_atomically(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON to a temporary file beside ``path`` and rename it into place."""
    write_text_atomically(path, json.dumps(data, indent=indent) + "\n")


def create_json_exclusively(path: str | os.PathLike, data: Any, indent: int | None = 2) -> bool:
    """Create ``path`` holding ``data`` as JSON only if it does not exist yet; False when it already did.

    The whole file is written to a temporary first and then hard-linked to ``path``: the link fails when
    ``path`` exists, so of several processes creating it at once exactly one wins, and nobody ever sees it
    half written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(data, indent=indent) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())
        os.link(temporary, target)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
