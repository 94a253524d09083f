"""The folder rules the README states: core imports nothing above it, models never imports app."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_nothing_above_it():
    for path in (ROOT / "app" / "core").glob("*.py"):
        bad = {n for n in imported(path) if (n.startswith("app.") and not n.startswith("app.core")) or
               n == "models" or n.startswith("models.")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_models_never_imports_app():
    for path in (ROOT / "models").rglob("*.py"):
        bad = {n for n in imported(path) if n == "app" or n.startswith("app.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_dicom_builders_import_no_feature():
    for path in (ROOT / "app" / "dicom").glob("*.py"):
        bad = {n for n in imported(path) if n.startswith(("app.inference", "app.training", "app.pacs", "app.api"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"
