"""Git trees as a hostile pusher makes them (entries planted with `git mktree`) and files with odd
names, for the tests of hostile input."""

from __future__ import annotations

import tempfile

import git

from tests.support.gitops import Origin

ODD_NAMES = [
    "with space.yaml",
    "café.yaml",
    "quote\"and'apostrophe.yaml",
    "-leading-dash.yaml",
    "new\nline.yaml",
    "tab\there.yaml",
    "back\\slash.yaml",
    "ünï/cödé.yaml",
    "日本.yaml",
]


def configmap(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n"
        "    app.kubernetes.io/name: demo\n    app.kubernetes.io/part-of: demo\ndata:\n  k: v\n"
    )


def tree_of(repo: git.Repo, rev: str, folder: str) -> dict[str, tuple[str, str]]:
    out = repo.git.execute(["git", "ls-tree", "-r", "-z", "--full-tree", rev, "--", folder + "/"])
    found = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, _, sha = meta.split()
        found[path[len(folder) + 1 :]] = (mode, sha)
    return found


def _mktree(repo: git.Repo, entries: list[tuple[str, str, str, str]]) -> str:
    records = "".join(f"{mode} {kind} {sha}\t{name}\0" for mode, kind, sha, name in entries)
    with tempfile.TemporaryFile() as fh:
        fh.write(records.encode())
        fh.seek(0)
        return str(repo.git.execute(["git", "mktree", "-z"], istream=fh))


def _replace(repo: git.Repo, tree: str, parts: list[str], extra: list[tuple[str, str, str, str]]) -> str:
    entries = []
    for record in filter(None, repo.git.execute(["git", "ls-tree", "-z", tree]).split("\0")):
        meta, name = record.split("\t", 1)
        mode, kind, sha = meta.split()
        if parts and name == parts[0]:
            sha = _replace(repo, sha, parts[1:], extra)
        entries.append((mode, kind, sha, name))
    if not parts:
        entries += extra
    return _mktree(repo, entries)


def plant(origin: Origin, folder: str, extra: list[tuple[str, str, str, str]]) -> str:
    """Push a commit whose `folder` also holds `extra` raw entries (mode, type, sha, name): what no
    `git add` would make, but a hostile or broken pusher can."""
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    tree = _replace(repo, repo.git.rev_parse("HEAD^{tree}"), folder.split("/"), extra)
    commit = repo.git.commit_tree(tree, "-p", "HEAD", "-m", "planted")
    repo.git.push("--quiet", "origin", f"{commit}:refs/heads/main")
    return str(commit)


def blob(origin: Origin, content: str) -> str:
    path = origin.work / ".blob"
    path.write_text(content)
    return str(origin.repo.git.hash_object("-w", str(path)))
