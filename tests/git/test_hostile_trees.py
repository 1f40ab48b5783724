"""Every file survives, and what can never be promoted is refused at once: an app folder holding files
named with spaces, unicode, quotes, a leading dash and a newline is promoted byte-identical (a property
test over file names too); tree entries git itself should never carry (`..`, `.git`, a submodule, an
absolute or escaping symlink), planted with `git mktree` as a hostile pusher would, are bad input
naming the path when a request is resolved and at every later read; and a checkout of a tree with an escaping link
is refused instead of retried."""

from __future__ import annotations

import tempfile
from pathlib import Path

import git
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promoter.errors import BadInput
from promoter.gitrepo import GitClone, refuse_entry
from promoter.models import PrepareInput, PromotionRequest
from tests.support.gitops import Origin
from tests.support.trees import ODD_NAMES, blob, configmap, plant, tree_of


def test_odd_file_names_are_promoted_byte_identical(origin: Origin, clone: GitClone) -> None:
    files = {f"environments/dev/demo/{n}": configmap(f"odd-{i}") for i, n in enumerate(ODD_NAMES)}
    commit = origin.commit(files, "odd names")
    change = PrepareInput(
        app="demo", commit=commit, source_env="dev", target_env="staging", local_files=["configmap.yaml"]
    )
    prepared = clone.push_branch(change)
    assert set(ODD_NAMES) <= set(prepared.diff.added), prepared.diff
    assert prepared.branch is not None
    merged = clone.merge_branch(prepared.branch, "merge")
    bare = git.Repo(origin.path)
    source, target = tree_of(bare, commit, "environments/dev/demo"), tree_of(bare, merged, "environments/staging/demo")
    for name in ODD_NAMES:
        assert target[name] == source[name], name  # same mode, same blob: byte-identical
    contents = clone.folder_files(merged, "environments/staging/demo")  # what sync applies
    assert all(contents[n] == configmap(f"odd-{i}").encode() for i, n in enumerate(ODD_NAMES))


NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(NAME_CHARS, min_size=1, max_size=20), min_size=1, max_size=4, unique=True))
def test_any_name_git_allows_survives_the_round_trip(clone: GitClone, names: list[str]) -> None:
    """Names built from any character but `/` and NUL: each either survives `StageChange.commit_folder` and
    `Clone.tree` unchanged, or (`.`, `..`, `.git`) is refused naming it."""
    repo = clone.plumbing.open()
    base = repo.git.rev_parse("origin/main")
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "blob"
        blob.write_bytes(b"kind: x\n")
        sha = repo.git.hash_object("-w", str(blob))
    from promoter.gitrepo import Entry

    entries = {n: Entry("100644", sha) for n in names}
    refused = [n for n in names if refuse_entry("f", n, "100644") is not None]
    if refused:
        assert all(n.lower().rstrip(". ") in {"", ".git"} or n in {".", ".."} for n in refused), refused
        return
    head = clone.changes.commit_folder(repo, base, "environments/dev/x", entries, "odd")
    assert clone.plumbing.tree(repo, head, "environments/dev/x") == entries


@pytest.mark.parametrize(
    ("mode", "kind", "content", "name", "expected"),
    [
        ("100644", "blob", "x", "..", "a path component named '..' cannot be promoted"),
        ("100644", "blob", "x", ".git", "a path component named '.git' cannot be promoted"),
        ("100644", "blob", "x", ".GIT", "a path component named '.GIT' cannot be promoted"),
        ("120000", "blob", "/etc/passwd", "abs.yaml", "a symlink to the absolute path '/etc/passwd'"),
        (
            "120000",
            "blob",
            "../../../../etc/passwd",
            "esc.yaml",
            "a symlink to '../../../../etc/passwd' leaves the repo",
        ),
        ("160000", "commit", "0123456789abcdef0123456789abcdef01234567", "sub", "a submodule cannot be promoted"),
    ],
)
def test_entries_git_should_never_carry_are_refused_when_resolving_naming_the_path(
    origin: Origin, clone: GitClone, mode: str, kind: str, content: str, name: str, expected: str
) -> None:
    sha = content if kind == "commit" else blob(origin, content)
    commit = plant(origin, "environments/dev/demo", [(mode, kind, sha, name)])
    for request in (PromotionRequest(app="demo"), PromotionRequest(app="demo", commit=commit)):
        with pytest.raises(BadInput) as refused:
            clone.resolve(request)
        assert str(refused.value).startswith(f"'environments/dev/demo/{name}': {expected}"), refused.value


def test_a_bad_entry_in_the_target_folder_is_refused_at_once(origin: Origin, clone: GitClone) -> None:
    commit = origin.bump()
    plant(origin, "environments/staging/demo", [("100644", "blob", blob(origin, "x"), "..")])
    change = PrepareInput(app="demo", commit=commit, source_env="dev", target_env="staging")
    for step in (clone.prepare, clone.push_branch):
        with pytest.raises(BadInput, match=r"environments/staging/demo/\.\.'?: a path component named '\.\.'"):
            step(change)
    assert "promote/demo/staging/" not in " ".join(h.name for h in git.Repo(origin.path).heads)


def test_a_checkout_with_an_escaping_link_elsewhere_is_refused(origin: Origin, clone: GitClone, tmp_path: Path) -> None:
    commit = plant(origin, "environments", [("120000", "blob", blob(origin, "/etc"), "base")])
    with pytest.raises(BadInput, match="cannot be checked out safely"):
        clone.export_tree(commit, tmp_path / "out")
