"""Atomic writers: a failed write leaves the previous file and no temporary behind."""

import json
import os
from pathlib import Path

import pytest

from yolox.utils.files import atomic_path, write_json_atomically, write_text_atomically


def test_json_is_written_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "run.json"
    write_json_atomically(target, {"status": "done"})
    assert json.loads(target.read_text()) == {"status": "done"}
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(path.name for path in target.parent.iterdir()) == ["run.json"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_a_failed_write_keeps_the_previous_file_and_removes_its_temporary(tmp_path: Path, failing: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "study.json"
    write_json_atomically(target, {"version": 1})
    if failing == "write":
        def full_disk(descriptor: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
    else:
        def refused_rename(source: str, destination: str) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "replace", refused_rename)
    with pytest.raises(OSError):
        write_json_atomically(target, {"version": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["study.json"]


def test_an_error_inside_the_block_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "study.png"
    write_text_atomically(target, "old")
    with pytest.raises(RuntimeError, match="plot failed"):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("plot failed")
    assert target.read_text() == "old" and [path.name for path in tmp_path.iterdir()] == ["study.png"]


def test_exclusive_create_keeps_the_first_file_whole(tmp_path: Path) -> None:
    from yolox.utils.files import create_json_exclusively

    target = tmp_path / "study_plan.json"
    assert create_json_exclusively(target, {"seeds": [0, 1]})
    assert not create_json_exclusively(target, {"seeds": [7]})
    assert json.loads(target.read_text()) == {"seeds": [0, 1]}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["study_plan.json"]
