"""What every stage reads again is parsed once: a manifest file's documents per content
(promoter.render), main's environments per `environments/` tree (promoter.git.reading); each caller
still gets its own copy, and a file that does not parse is refused each time, naming where it was."""

from __future__ import annotations

from typing import Any

import pytest

from promoter import render
from promoter.errors import BadInput
from promoter.git import reading
from promoter.gitrepo import GitClone
from tests.support.gitops import Origin


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_a_manifest_is_parsed_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch, render.yamlsafe, "load_all")
    text = b"kind: ConfigMap\nmetadata: {name: parsed-once-7f3a}\ndata: {a: '1'}\n"  # no other test's file
    first = render.parse_manifests({"cm.yaml": text}, "environments/dev/x")
    first[0]["data"]["a"] = "changed by its caller"
    second = render.parse_manifests({"other.yaml": text}, "environments/prod/x")
    assert second == [{"kind": "ConfigMap", "metadata": {"name": "parsed-once-7f3a"}, "data": {"a": "1"}}]
    assert len(calls) == 1
    broken = b"kind: [\n"
    for where in ("environments/dev/y", "environments/prod/y"):
        with pytest.raises(BadInput, match=f"^{where}/cm.yaml: line"):
            render.parse_manifests({"cm.yaml": broken}, where)
    assert len(calls) == 3  # a broken file is never kept


def test_environments_are_parsed_once_per_tree(
    origin: Origin, clone: GitClone, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = "environments/staging/environment.yaml"
    origin.commit({staging: origin.show("main", staging) + f"\n# {origin.path}\n"})  # a tree no other test has
    calls = counting(monkeypatch, reading, "parse_environment")
    gitops = clone.reading
    repo = clone.plumbing.fresh()
    main = clone.plumbing.main(repo)
    first = gitops.environments_at(repo, main)
    first[0].config.approval.required = 99
    again = gitops.environments_at(repo, main)
    assert [e.config.name for e in again] == ["dev", "staging", "prod"]
    assert again[0].config.approval.required != 99  # each caller's own copy
    assert len(calls) == 3
    origin.commit({staging: origin.show("main", staging) + "\n# changed\n"})
    repo = clone.plumbing.fresh()
    gitops.environments_at(repo, clone.plumbing.main(repo))
    assert len(calls) == 6  # another tree: parsed again
