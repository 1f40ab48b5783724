"""`promoter up`'s seeding (`seed_origin`): origin's main is one root commit whose tree is the source's
folders as `git add -A` takes them (ignored files left out, symlinks followed, the executable bit kept,
any file name), with the demo signers added to trust/allowed_signers; a source without environments/
is refused in one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import git
import pytest

from promoter.errors import BadInput
from promoter.names import ALLOWED_SIGNERS
from promoter.stack import SEED_FOLDERS, allowed_signers, seed_origin
from tests.support.gitops import make_gitops


def expected_tree(source: Path, ignored: set[str]) -> dict[str, tuple[str, bytes]]:
    """Each file of the seeded folders (symlinks followed) with its mode and bytes, as plainly walked."""
    found: dict[str, tuple[str, bytes]] = {}
    for folder in SEED_FOLDERS:
        for top, _, names in os.walk(source / folder, followlinks=True):
            for name in names:
                path = Path(top) / name
                rel = path.relative_to(source).as_posix()
                if rel not in ignored:
                    mode = "100755" if path.stat().st_mode & stat.S_IXUSR else "100644"
                    found[rel] = (mode, path.read_bytes())
    return found


def seeded_tree(origin: Path) -> dict[str, tuple[str, bytes]]:
    repo = git.Repo(origin)
    listing = repo.git.ls_tree("-r", "-z", "main").split("\0")
    found: dict[str, tuple[str, bytes]] = {}
    for line in filter(None, listing):
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        found[path] = (mode, repo.odb.stream(bytes.fromhex(sha)).read())
    return found


def test_the_seeded_tree_is_the_source_s_folders_with_the_signers_added(tmp_path: Path) -> None:
    source = make_gitops(tmp_path)
    (source / "README.md").write_text("not seeded: outside the folders\n")
    odd = source / "environments" / "dev" / "demo" / 'a "quoted" name\\with space.yaml'
    odd.write_text("kind: ConfigMap\n")
    script = source / "policies" / "check.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (source / "environments" / ".gitignore").write_text("*.swp\n")
    (source / "environments" / "dev" / "demo" / "deployment.yaml.swp").write_text("an editor's\n")
    (source / "policies" / "shared").mkdir()
    (source / "policies" / "shared" / "lib.rego").write_text("package shared\n")
    (source / "policies" / "linked.rego").symlink_to(source / "policies" / "shared" / "lib.rego")
    (source / "trust").mkdir()
    (source / ALLOWED_SIGNERS).write_text('dana namespaces="git" ssh-ed25519 AAAA dana\n')
    signers = {"alice": "ssh-ed25519 AAAAalice", "promoter": "ssh-ed25519 AAAApromoter"}

    head = seed_origin(source, tmp_path / "origin.git", signers=signers)

    want = expected_tree(source, ignored={"environments/dev/demo/deployment.yaml.swp"})
    want[ALLOWED_SIGNERS] = ("100644", allowed_signers(signers, (source / ALLOWED_SIGNERS).read_text()).encode())
    got = seeded_tree(tmp_path / "origin.git")
    assert got == want
    assert got["policies/check.sh"][0] == "100755" and got["policies/linked.rego"] == ("100644", b"package shared\n")
    assert "README.md" not in got and "environments/dev/demo/deployment.yaml.swp" not in got
    repo = git.Repo(tmp_path / "origin.git")
    assert repo.git.rev_list("main").split() == [head]  # one root commit: the rules' trust root
    commit = repo.commit(head)
    assert (commit.author.name, commit.committer.email) == ("promoter", "promoter@localhost")
    assert commit.message == f"Seed from {source.name}\n"


def test_without_signers_the_source_s_own_allowed_signers_is_seeded_as_it_is(tmp_path: Path) -> None:
    source = make_gitops(tmp_path)
    head = seed_origin(source, tmp_path / "origin.git")
    assert seeded_tree(tmp_path / "origin.git") == expected_tree(source, ignored=set())
    assert git.Repo(tmp_path / "origin.git").git.rev_list("--max-parents=0", "main") == head


def test_a_source_without_environments_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "src" / "policies").mkdir(parents=True)
    with pytest.raises(BadInput) as refused:
        seed_origin(tmp_path / "src", tmp_path / "origin.git")
    assert str(refused.value) == f"{tmp_path / 'src'} has no environments/ folder; point --repo at a GitOps repository"
