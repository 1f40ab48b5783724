"""The git adapter's shape (issue 27): `promoter.git` cut by concern, each module importing only the
concerns below it (plumbing at the bottom, the facade at the top), every module under 400 lines, every
class under 300 and every function at most 60; and `promoter.gitrepo` still exporting the names its
callers import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "promoter" / "git"
# top to bottom; a module imports only modules of the layers below its own
LAYERS = [
    {"facade", "ports"},
    {"writing", "provenance", "glass"},
    {"change", "reading", "folders"},
    {"rules"},
    {"index"},
    {"merged", "clone"},
    {"commits", "trees", "indexdata"},
    {"objects"},
]
MODULES = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")


def _layer(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def _imported(path: Path) -> set[str]:
    """The modules of promoter.git that `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "promoter.git":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("promoter.git."):
            found.add((node.module or "").split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("promoter.git."))
    return found


def test_every_module_has_its_layer() -> None:
    assert {p.stem for p in MODULES} == set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_a_concern_imports_only_those_below_it(path: Path) -> None:
    above = {name for name in _imported(path) if _layer(name) <= _layer(path.stem)}
    assert not above, f"{path.stem} imports {sorted(above)}, which are not below it"


@pytest.mark.parametrize("path", [*MODULES, PACKAGE.parent / "gitrepo.py"], ids=lambda p: p.stem)
def test_sizes(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) < 400
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            assert length <= 300, f"class {node.name}: {length} lines"
        else:
            assert length <= 60, f"{node.name}: {length} lines"


def test_gitrepo_keeps_the_names_callers_import() -> None:
    from promoter import gitrepo

    for name in ("GIT_USERS", "MAIN", "Entry", "GitClone", "GitRepository", "auth_env", "refuse_entry"):
        assert hasattr(gitrepo, name), name
