"""The README's layout table against the tree: every path it names exists, the folder of each row
and every path-like name (`forges/`, `data.yaml`) in its description, read inside that folder or
from the repository's root; and CONTRIBUTING.md's map of the code against the product's modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_rows() -> list[tuple[str, str]]:
    """(path, description) of each row of the table under `## Layout` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", section, re.MULTILINE)
    assert rows, "README.md has no layout table under '## Layout'"
    return rows


def test_every_path_the_readme_layout_names_exists() -> None:
    missing = []
    for path, what in layout_rows():
        if not (ROOT / path).exists():
            missing.append(path)
        for name in re.findall(r"`([^`\s]+)`", what):
            if ("/" in name or "." in name) and not ((ROOT / path / name).exists() or (ROOT / name).exists()):
                missing.append(f"{name} (in the row of {path})")
    assert not missing, f"README.md's layout names paths that do not exist: {missing}"


def test_the_check_reads_the_table() -> None:
    """The table is found and read (a reformatted table must not pass the test above by being empty)."""
    paths = [path for path, _ in layout_rows()]
    assert {"promoter/", "workflows/", "activities/", "policies/", "tests/"} <= set(paths)


def code_map() -> str:
    """The table under `## Map of the code` in CONTRIBUTING.md."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert "\n## Map of the code\n" in text, "CONTRIBUTING.md has no '## Map of the code'"
    return text.split("\n## Map of the code\n", 1)[1].split("\n## ", 1)[0]


def test_contributings_map_of_the_code_matches_the_tree() -> None:
    """Every path the map names exists, and every module of the product is named: by its path, or by
    its name in the row of its package (`promoter/cluster/` ... `health`)."""
    section = code_map()
    rows = [r for r in re.findall(r"^\| (.+?) \| (.*) \|$", section, re.MULTILINE) if r[0] != "where"]
    assert len(rows) > 10, "the map's table was not read"
    named: set[str] = set()
    for where, what in rows:
        for path in re.findall(r"`([^`]+)`", where):
            assert (ROOT / path).exists(), f"CONTRIBUTING.md's map names {path}, which does not exist"
            named.add(path.rstrip("/"))
            words = set(re.findall(r"`([\w.]+?)(?:\.py)?`", what))
            if path.endswith("/"):
                named |= {f"{path}{w}.py" for w in words if (ROOT / path / f"{w}.py").exists()}
        for path in re.findall(r"`((?:promoter|workflows|activities)/[\w/]+\.py)`", what):
            assert (ROOT / path).exists(), f"CONTRIBUTING.md's map names {path}, which does not exist"
            named.add(path)
    missing = []
    for package in ("promoter", "workflows", "activities"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if path.name in ("__init__.py", "__main__.py", "py.typed"):
                continue
            if rel not in named:  # named by its path, or by its name in its package's row
                missing.append(rel)
    assert not missing, f"modules missing from CONTRIBUTING.md's map of the code: {missing}"
