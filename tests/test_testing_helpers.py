"""``dcslog.testing`` is for the tests and the benchmarks: the service itself never imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import dcslog

SOURCE = Path(dcslog.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_service_never_imports_the_test_helpers():
    offenders = [str(path.relative_to(SOURCE)) for path in SOURCE.rglob("*.py")
                 if "testing" not in path.relative_to(SOURCE).parts
                 and any(m == "dcslog.testing" or m.startswith("dcslog.testing.") for m in imported_modules(path))]
    assert offenders == [], f"service modules import dcslog.testing: {offenders}"
