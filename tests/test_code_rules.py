"""Rules of the code that no linter checks: every `# noqa: BLE001` (a blind `except Exception`, which
pyproject.toml allows only with a reason) says why after it, as `# noqa: BLE001 - why`; a blind
`except BaseException`/`except Exception` that ruff lets pass (it re-raises) says why too; and every
patch a workflow carries (`workflow.patched`) is named in CONTRIBUTING.md's "Versioning a workflow
change", so the next maintainer knows which old paths are still live."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("promoter", "workflows", "activities")


def product_lines() -> list[tuple[str, int, str, list[str]]]:
    """(file, line number, line, the file's lines) of every line of the product code."""
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            rel = str(path.relative_to(ROOT))
            found += [(rel, n, line, lines) for n, line in enumerate(lines, 1)]
    return found


def test_every_blind_except_noqa_says_why() -> None:
    bare = [
        f"{rel}:{n}"
        for rel, n, line, _ in product_lines()
        if "noqa: BLE001" in line and not re.search(r"# noqa: BLE001 - \S", line)
    ]
    assert not bare, f"`# noqa: BLE001` without `- why` after it: {bare}"


def test_every_blind_except_that_reraises_says_why() -> None:
    """`except BaseException:` passes ruff when it re-raises; its comment (on the line or the next)
    says why it is not `except Exception`."""
    silent = []
    for rel, n, line, lines in product_lines():
        if re.match(r"\s*except (BaseException|Exception)( as \w+)?:\s*$", line):
            following = lines[n] if n < len(lines) else ""
            if not following.strip().startswith("#"):
                silent.append(f"{rel}:{n}")
    assert not silent, f"a blind except without a comment saying why: {silent}"


def patch_ids() -> dict[str, str]:
    """Every patch ID a workflow passes to `workflow.patched`, with where: a literal, or a module
    constant of workflows/ holding it."""
    constants: dict[str, str] = {}
    calls: list[tuple[str, str]] = []
    for path in sorted((ROOT / "workflows").rglob("*.py")):
        text = path.read_text()
        constants.update(re.findall(r'^([A-Z][A-Z0-9_]*) = "([^"]+)"', text, re.MULTILINE))
        rel = str(path.relative_to(ROOT))
        calls += [(arg, rel) for arg in re.findall(r"workflow\.(?:patched|deprecate_patch)\(([^)]+)\)", text)]
    ids = {}
    for arg, rel in calls:
        literal = re.fullmatch(r'"([^"]+)"', arg.strip())
        name = arg.strip().split(".")[-1]
        assert literal or name in constants, f"{rel}: workflow.patched({arg}) is neither a literal nor a constant"
        ids[literal.group(1) if literal else constants[name]] = rel
    return ids


def test_every_workflow_patch_is_documented() -> None:
    ids = patch_ids()
    assert ids, "no workflow.patched call found: the scan no longer reads workflows/"
    versioning = (ROOT / "CONTRIBUTING.md").read_text().split("## Versioning a workflow change", 1)[1]
    versioning = versioning.split("\n## ", 1)[0]
    undocumented = sorted(f"{pid} ({rel})" for pid, rel in ids.items() if f"`{pid}`" not in versioning)
    assert not undocumented, f"CONTRIBUTING.md's 'Versioning a workflow change' does not name {undocumented}"


def test_no_function_over_60_lines_no_class_over_300_and_the_split_packages_under_400() -> None:
    """The sizes a new maintainer can read at once: in the product, no function over 60 lines and no
    class over 300; the packages cut by concern (the CLI, git, the cluster client) keep each module
    under 400 lines."""
    import ast

    too_long = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            source = path.read_text()
            if rel.startswith(("promoter/cli/", "promoter/git/", "promoter/cluster/")) and source.count("\n") > 400:
                too_long.append(f"{rel}: {source.count(chr(10))} lines")
            for node in ast.walk(ast.parse(source)):
                limit = 300 if isinstance(node, ast.ClassDef) else 60
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > limit:
                        too_long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, f"over the size limits: {too_long}"


def test_each_activity_class_takes_only_the_git_port_it_declares() -> None:
    """The activities never take the whole git side (`GitRepository`, `GitClone`): each declares the
    methods it uses as a Protocol beside it, so what a step may do to the repository is read there."""
    takers = []
    for path in sorted((ROOT / "activities").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            named = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
            if named in ("GitRepository", "GitClone"):
                takers.append(f"{path.name}:{getattr(node, 'lineno', 0)} {named}")
            modules = [node.module] if isinstance(node, ast.ImportFrom) else []
            modules += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                if module in ("promoter.gitrepo", "promoter.git.facade", "promoter.git.ports"):
                    takers.append(f"{path.name}:{getattr(node, 'lineno', 0)} imports {module}")
    assert takers == []
