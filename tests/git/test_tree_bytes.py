"""Trees read and changed from their bytes (promoter.git.trees: `parse_tree`, `find`, `replace`),
checked against git itself: the entries `git ls-tree` lists, the entry `git rev-parse TREE:PATH` names,
and the tree `git mktree` writes for the same change. A big monorepo's `environments/<env>` tree holds
thousands of entries and a new one comes with every commit, so a lookup reads the bytes without
parsing every entry, and a change writes one entry again instead of sorting the tree again: each must
still answer exactly as git does, whatever the names and the IDs hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from promoter.errors import BadInput
from promoter.git import objects, trees

# names a lookup must match byte for byte: regex syntax, look-alike prefixes, spaces, non-UTF-8
NAMES = ["demo", "demo-2", "dem", "a.b", "a+b", "(x)", "[y]", "s p", "back\\slash", "\udcff\udcfe-latin1", "z*"]


def git_out(cwd: Path, *args: str | bytes, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, check=True).stdout


def mktree(path: Path, rows: list[tuple[str, str, str]]) -> str:
    """The tree git writes for (mode, name, sha) rows (folders given as mode 040000)."""
    lines = b"".join(
        f"{mode} {'tree' if mode == objects.TREE else 'blob'} {sha}\t".encode()
        + name.encode("utf-8", "surrogateescape")
        + b"\0"
        for mode, name, sha in rows
    )
    return git_out(path, "mktree", "-z", data=lines).decode().strip()


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, git.Repo, str, str]:
    """A repository with one blob and one folder holding it (their IDs), for trees to point at."""
    path = tmp_path / "repo"
    git.Repo.init(path)
    repo = git.Repo(path)
    blob = objects.store(repo, b"blob", b"kind: ConfigMap\n")
    folder = trees.write_tree(repo, [("100644", "configmap.yaml", blob)])
    return path, repo, blob, folder


def test_a_tree_parses_as_git_lists_it_and_bytes_that_are_no_tree_are_refused(
    store: tuple[Path, git.Repo, str, str],
) -> None:
    path, repo, blob, folder = store
    rows = [(objects.TREE, n, folder) for n in NAMES] + [("100644", f"{n}.yaml", blob) for n in NAMES]
    rows += [("100755", "run.sh", blob), (objects.SYMLINK, "link", blob)]
    tree = mktree(path, rows)
    listed = [
        (mode.decode(), name.decode("utf-8", "surrogateescape"), sha.decode())
        for line in git_out(path, "ls-tree", "-z", tree).split(b"\0")
        if line
        for meta, _, name in [line.partition(b"\t")]
        for mode, _, sha in [meta.split(b" ")]
    ]
    assert list(trees.parse_tree(objects.raw(repo, tree))) == listed
    whole = objects.raw(repo, tree)
    for broken in (whole[:-1], whole + b"x", b"100644 a" + bytes(19), b"10x644 a\0" + bytes(20)):
        with pytest.raises(ValueError):
            trees.parse_tree(broken)


def test_a_name_is_found_as_git_finds_it_never_inside_another_entrys_id(store: tuple[Path, git.Repo, str, str]) -> None:
    path, repo, blob, folder = store
    tree = mktree(path, [(objects.TREE, n, folder) for n in NAMES] + [("100644", "demo.yaml", blob)])
    for name in [*NAMES, "demo.yaml"]:
        found = trees.find(repo, tree, name)
        named = f"{tree}:".encode() + name.encode("utf-8", "surrogateescape")  # git's argv: the name's bytes
        assert found is not None and found.sha == git_out(path, "rev-parse", named).decode().strip()
    for missing in ("de", "demo-", "x", ".", "a", "demo/"):
        assert trees.find(repo, tree, missing) is None
    # an entry whose 20-byte ID holds the bytes of an entry named `demo` (a pusher can grind an ID that
    # does): the lookup walks entry by entry, so it never takes those bytes for an entry
    forged = bytes.fromhex(blob)[:5] + b"0 demo\0" + bytes(8)
    planted = objects.store(repo, b"tree", b"100644 a\0" + forged + b"100644 b\0" + bytes.fromhex(blob))
    assert trees.find(repo, planted, "demo") is None
    assert trees.find(repo, planted, "b") == objects.Entry("100644", blob)


@pytest.mark.parametrize(
    "change",
    [
        "replace a folder",
        "replace deep",
        "remove a folder",
        "remove the last",
        "add a folder",
        "add deep",
        "over a file",
    ],
)
def test_a_change_writes_the_tree_git_writes(store: tuple[Path, git.Repo, str, str], change: str) -> None:
    path, repo, blob, folder = store
    other = trees.write_tree(repo, [("100644", "deployment.yaml", blob)])
    apps = [(objects.TREE, f"app-{i:04d}", folder) for i in range(300)] + [(objects.TREE, "demo", folder)]
    env = mktree(path, [*apps, ("100644", "environment.yaml", blob), ("100644", "demo.txt", blob)])
    root = mktree(path, [(objects.TREE, "environments", mktree(path, [(objects.TREE, "dev", env)]))])
    parts, new, rows = {
        "replace a folder": (["demo"], other, [*apps[:-1], (objects.TREE, "demo", other)]),
        "replace deep": (["demo", "configmap.yaml"], None, [*apps[:-1]]),  # its only file gone: the folder too
        "remove a folder": (["app-0007"], None, [a for a in apps if a[1] != "app-0007"]),
        "remove the last": (["demo"], None, apps[:-1]),
        "add a folder": (["app-9999"], other, [*apps, (objects.TREE, "app-9999", other)]),
        "add deep": (
            ["new", "inner"],
            other,
            [*apps, (objects.TREE, "new", trees.write_tree(repo, [(objects.TREE, "inner", other)]))],
        ),
        "over a file": (
            ["demo.txt"],
            other,
            [*apps, (objects.TREE, "demo.txt", other)],
        ),  # a file gives way to the folder
    }[change]
    rows = [*rows, ("100644", "environment.yaml", blob)] + (
        [] if change == "over a file" else [("100644", "demo.txt", blob)]
    )
    expected = mktree(path, [(objects.TREE, "environments", mktree(path, [(objects.TREE, "dev", mktree(path, rows))]))])
    assert trees.replace(repo, root, ["environments", "dev", *parts], new) == expected
    git_out(path, "fsck", "--strict", "--no-dangling", expected)


def test_a_tree_left_empty_is_removed_up_to_the_root(store: tuple[Path, git.Repo, str, str]) -> None:
    path, repo, _, folder = store
    root = mktree(
        path,
        [
            (
                objects.TREE,
                "environments",
                mktree(path, [(objects.TREE, "dev", mktree(path, [(objects.TREE, "demo", folder)]))]),
            )
        ],
    )
    assert trees.replace(repo, root, ["environments", "dev", "demo"], None) is None


def planted(repo: git.Repo, rows: list[tuple[bytes, bytes, str]]) -> str:
    """A tree of raw (mode, name, sha) rows in the order given, as a hostile pusher can write one (git
    accepts zero-padded modes, and an origin without fsck takes unsorted or duplicate entries)."""
    return objects.store(repo, b"tree", b"".join(m + b" " + n + b"\0" + bytes.fromhex(s) for m, n, s in rows))


@pytest.mark.parametrize("shape", ["zero-padded folder mode", "a file named as the folder", "unsorted", "twice"])
def test_a_change_to_a_tree_git_does_not_write_gives_the_tree_git_would(
    store: tuple[Path, git.Repo, str, str], shape: str
) -> None:
    """Only a canonical tree is changed in place; any other is sorted again with every entry of that
    name dropped: the other apps stay, and what git reads and checks out at the path is the promoted
    folder, never a hidden second `prod` (a checkout takes the last of two)."""
    path, repo, blob, _ = store
    evil = objects.store(repo, b"blob", b"kind: Secret\n")
    prod = planted(repo, [(b"40000", b"other", trees.write_tree(repo, [("100644", "f", blob)]))])
    hidden = planted(repo, [(b"40000", b"app", trees.write_tree(repo, [("100644", "x", evil)]))])
    zzz = trees.write_tree(repo, [("100644", "f", blob)])
    env = {
        "zero-padded folder mode": [(b"040000", b"prod", prod)],
        "a file named as the folder": [(b"100644", b"prod", blob), (b"40000", b"prod", prod)],
        "unsorted": [(b"40000", b"zzz", zzz), (b"40000", b"prod", prod)],
        "twice": [(b"40000", b"prod", prod), (b"40000", b"prod", hidden)],
    }[shape]
    promoted = trees.write_tree(repo, [("100644", "x", blob)])
    changed = trees.replace(repo, planted(repo, env), ["prod", "app"], promoted)
    assert changed is not None
    listed = git_out(path, "ls-tree", "-r", "--name-only", changed).decode().split()
    assert listed == ["prod/app/x", "prod/other/f", *(["zzz/f"] if shape == "unsorted" else [])]
    assert git_out(path, "rev-parse", f"{changed}:prod/app").decode().strip() == promoted
    for tree in (changed, f"{changed}:prod"):  # as git writes them: `git mktree` of their listing is themselves
        sha = git_out(path, "rev-parse", tree).decode().strip()
        assert git_out(path, "mktree", "-z", data=git_out(path, "ls-tree", "-z", sha)).decode().strip() == sha


@pytest.mark.parametrize("damage", ["cut short", "a mode that is no number", "an empty name"])
def test_a_tree_that_is_no_git_tree_is_refused_with_its_name_never_half_read(
    store: tuple[Path, git.Repo, str, str], damage: str
) -> None:
    """A broken or hostile push can carry tree bytes git's own reader would refuse: a lookup, a listing
    and a change each refuse them as bad input naming the tree, even for a name found before the damage."""
    _, repo, blob, folder = store
    head = b"40000 demo\0" + bytes.fromhex(folder)
    tail = {
        "cut short": b"100644 z\0" + bytes.fromhex(blob)[:12],
        "a mode that is no number": b"10o644 z\0" + bytes.fromhex(blob),
        "an empty name": b"100644 \0" + bytes.fromhex(blob),
    }[damage]
    broken = objects.store(repo, b"tree", head + tail)
    for ask in (
        lambda: trees.find(repo, broken, "demo"),
        lambda: list(trees.entries(repo, broken)),
        lambda: trees.replace(repo, broken, ["demo"], None),
    ):
        with pytest.raises(BadInput, match=f"the tree {broken[:12]} is not a well-formed git tree"):
            ask()
