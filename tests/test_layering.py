"""Import layering: the core packages never import the layers built on them."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "yolox"
# Each lower package and the packages above it that it must not import (at module level or inside functions).
FORBIDDEN_ABOVE = {
    "models": ("yolox.cli", "yolox.benchmarks", "yolox.core", "yolox.evaluators", "yolox.exp", "yolox.study"),
    "data": ("yolox.cli", "yolox.benchmarks", "yolox.core", "yolox.evaluators", "yolox.exp", "yolox.study"),
    "utils": ("yolox.cli", "yolox.benchmarks", "yolox.core", "yolox.evaluators", "yolox.exp", "yolox.study"),
    "core": ("yolox.cli", "yolox.benchmarks", "yolox.study"),
    "evaluators": ("yolox.cli", "yolox.benchmarks", "yolox.study", "yolox.core"),
    # The commands are the top layer: what a study, a benchmark or an exp needs lives below them.
    "study": ("yolox.cli",),
    "benchmarks": ("yolox.cli",),
    "exp": ("yolox.cli",),
}

# The one exception: the official YOLOX API puts its model factories (create_yolox_model, yolox_s, ...) at
# yolox.models.build; they build from the default exps, and yolox.models only exposes them lazily.
ALLOWED_FILES = {"yolox/models/build.py"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an ``import`` or ``from ... import`` statement of ``path`` names, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def upward_imports(package: str) -> list[str]:
    """``file:line module`` for each import of ``package`` that reaches a layer above it."""
    forbidden = FORBIDDEN_ABOVE[package]
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        if str(path.relative_to(PACKAGE.parent)) not in ALLOWED_FILES
        for line, module in imported_modules(path)
        if any(module == prefix or module.startswith(prefix + ".") for prefix in forbidden)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN_ABOVE))
def test_no_upward_imports(package: str) -> None:
    assert upward_imports(package) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """A function-level import counts as much as a module-level one."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from yolox.exp import get_exp\n    import yolox.cli.common\n")
    assert [module for _, module in imported_modules(sample)] == ["yolox.exp.get_exp", "yolox.cli.common"]
