"""The linter's file selection: every source file of the package is checked, none excluded by a stray pattern."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_checks_every_file_of_the_package() -> None:
    """A folder pattern in pyproject.toml's exclude must not hide a package folder of the same name."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed")
    listed = subprocess.run(
        [ruff, "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    checked = {Path(line.strip()).resolve() for line in listed.splitlines() if line.strip().endswith(".py")}
    package_files = {path.resolve() for path in (ROOT / "yolox").rglob("*.py")}
    assert package_files, "no Python files found under yolox/"
    assert sorted(str(path.relative_to(ROOT)) for path in package_files - checked) == []
