"""Every fenced example of README.md, CONTRIBUTING.md and docs/*.md marked runnable runs as written.

A block is runnable when the line before its fence is an HTML comment, invisible once rendered:
`<!-- runnable -->` before a `bash`/`sh` block runs it, line by line with `set -e`, in a person's
clone of the origin of ONE embedded stack started for this module (`promoter up --detach` on free
ports, `PROMOTER_STATE_DIR` set, `promoter` and `kubectl` on `PATH`, `EDITOR=true` for
`kubectl edit`), and stopped at the end; `<!-- runnable: environment.yaml -->` before a `yaml`
block loads it with the product's own parser (promoter.environments), and `<!-- runnable:
manifest -->` parses it as Kubernetes manifests (promoter.render). In a shell block, a `#> TEXT` line
after a command says what it prints: its output must contain TEXT. A block that fails names its
document, the line in it and the command. The blocks run in document order, and each shell block
sees what the ones before it did (so keep them cheap: no promotion waits on a gate here)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from promoter.environments import parse_environment
from promoter.errors import PromoterError
from promoter.render import parse_manifests
from tests.support.gitops import ROOT, Cli, Origin, running_stack

MARK = re.compile(r"^<!--\s*runnable(?::\s*(?P<kind>[\w.\-]+))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
SHELLS = {"bash", "sh", "shell", "console"}
KINDS = {"environment.yaml", "manifest"}


@dataclass(frozen=True)
class Example:
    doc: str  # relative to the repository
    line: int  # the fence's line, 1-based
    lang: str
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def docs() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples_in(path: Path) -> Iterator[Example]:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        assert fence, f"{path.relative_to(ROOT)}:{i + 1}: a runnable mark must be the line right before a fence"
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.relative_to(ROOT)}:{i + 2}: the fence is never closed"
        yield Example(
            str(path.relative_to(ROOT)), i + 2, fence["lang"], mark["kind"] or "", "\n".join(lines[i + 2 : end])
        )


EXAMPLES = [e for p in docs() for e in examples_in(p)]


def test_every_mark_is_understood() -> None:
    assert EXAMPLES, "no runnable example found: the marks are gone"
    for e in EXAMPLES:
        if e.lang in SHELLS:
            assert not e.kind, f"{e.where}: a shell block takes no kind"
        else:
            assert e.kind in KINDS, f"{e.where}: mark a {e.lang or 'plain'} block with one of {sorted(KINDS)}"


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.kind], ids=lambda e: e.where)
def test_yaml_example_loads(example: Example) -> None:
    try:
        if example.kind == "environment.yaml":
            name = re.search(r"^name:\s*(\S+)", example.text, re.M)
            assert name, f"{example.where}: an environment.yaml example names its environment"
            parse_environment(example.text, example.where, name[1])
        else:
            assert parse_manifests({"example.yaml": example.text.encode()}, example.where)
    except PromoterError as e:
        pytest.fail(f"{example.where}: the example does not load: {e}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Origin]]:
    with running_stack(tmp_path_factory.mktemp("docs")) as running:
        yield running


@dataclass
class Command:
    line: int  # in the document
    text: str
    prints: list[str]  # what its output must contain: the `#> TEXT` lines after it


def commands(example: Example) -> list[Command]:
    """The block's commands with the document's line of each: comments and blank lines dropped, lines
    ending in a backslash joined; a `#> TEXT` line says what the command before it prints."""
    found: list[Command] = []
    pending: tuple[int, str] | None = None
    for n, raw in enumerate(example.text.splitlines(), start=example.line + 1):
        line = raw if pending else raw.strip()
        if pending is None and line.startswith("#>"):
            assert found, f"{example.doc}:{n}: `#>` says what the command before it prints: there is none"
            found[-1].prints.append(line[2:].strip())
            continue
        if pending is None and (not line or line.startswith("#")):
            continue
        at, text = pending or (n, "")
        if line.rstrip().endswith("\\"):
            pending = (at, text + line.rstrip()[:-1])
            continue
        pending = None
        found.append(Command(at, text + line, []))
    return found


def run_shell(example: Example, cli: Cli, origin: Origin) -> None:
    env = {
        **cli.env,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "EDITOR": "true",  # `kubectl edit` as a person who saves without changing anything
        "KUBE_EDITOR": "true",
    }
    exports: list[str] = []
    for c in commands(example):
        line, command = c.line, c.text
        script = "\n".join([*exports, command])
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=origin.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, (
            f"{example.doc}:{line}: `{command}` exited {done.returncode}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
        )
        missing = [text for text in c.prints if text not in done.stdout + done.stderr]
        assert not missing, (
            f"{example.doc}:{line}: `{command}` does not print {missing[0]!r}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
        )
        if command.startswith("export "):
            exports.append(command)


def test_shell_examples_run(stack: tuple[Cli, Origin]) -> None:
    """The shell examples, in document order, on the module's one stack; every failure is reported."""
    cli, origin = stack
    failures = []
    for example in [e for e in EXAMPLES if e.lang in SHELLS]:
        try:
            run_shell(example, cli, origin)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n\n".join(failures)
