"""The README's layout table against the tree: every path it names exists, the folder of each row
and every path-like name (`forges/`, `data.yaml`) in its description, read inside that folder or
from the repository's root."""

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
