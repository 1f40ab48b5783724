"""History a pusher forges with git plumbing (any tree, parents, names and message bytes; no trusted key)
never reads as promoter's own merge or as another commit's people.

Found by review: git's log output was split at \\x1e and \\x1f, which a name, an email or a message can
hold, so a pushed commit could start a made-up record (a revert merge of an app that promoter signed,
or another commit's authors and signer); and any old branch commit promoter signed, merged again by a
pusher with a look-alike message and a folder of their own, made the drift heal count that folder as
promoted. Now each commit's fields are read from its own object, a log must list exactly git's own
commits, and a merge counts as promoter's only when it brings its signed branch commit for the first
time and writes the app's folder as that commit does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from activities.promoted import PromotedFolders
from promoter.gitrepo import GitClone
from tests.support.gitops import Origin
from tests.support.keys import commit_signed, keygen

DEPLOYMENT = "environments/prod/demo/deployment.yaml"


@pytest.fixture
def signed(origin_factory: Callable[..., Origin], tmp_path: Path) -> tuple[Origin, dict[str, Path], str]:
    """An origin whose trust/ lists platform and promoter for git, its main then the trust root."""
    keys = {name: tmp_path / name for name in ("platform", "promoter")}
    public = {name: keygen(path) for name, path in keys.items()}
    origin = origin_factory()
    allowed = f'platform namespaces="git" {public["platform"]}\npromoter namespaces="git" {public["promoter"]}\n'
    return origin, keys, origin.commit({"trust/allowed_signers": allowed}, "trust")


def plumb(origin: Origin, *args: str, data: bytes = b"", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(origin.work), *args], input=data, capture_output=True, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


def evil_tree(origin: Origin, base: str) -> str:
    """`base`'s files with prod's demo running an image of the pusher's."""
    origin.repo.git.checkout("-q", "--detach", base)
    path = origin.work / DEPLOYMENT
    path.write_text(path.read_text().replace("image:", "image: evil #"))
    origin.repo.git.add(DEPLOYMENT)
    tree = origin.repo.git.write_tree()
    origin.repo.git.checkout("-q", "-f", "main")
    return tree


def merged_branch(origin: Origin, keys: dict[str, Path], root: str) -> tuple[str, str]:
    """A branch commit promoter signed (another app's promotion), merged into main: (it, main)."""
    origin.repo.git.checkout("-q", "--detach", root)
    (origin.work / "policies/b.txt").write_text("b")
    origin.repo.git.add("policies/b.txt")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['promoter']}.pub", "commit", "-S", "-q"]
    origin.repo.git.execute(["git", *sign, "-m", "promote other"])
    branch = origin.repo.head.commit.hexsha
    origin.repo.git.checkout("-q", "-f", "main")
    origin.repo.git.merge("--no-ff", "-q", "-m", "Merge pull request #1 from promote/other/prod/x", branch)
    origin.repo.git.push("-q", "origin", "main")
    return branch, origin.repo.head.commit.hexsha


def promoter_clone(origin: Origin, keys: dict[str, Path], root: str, path: Path) -> GitClone:
    clone = GitClone(origin.url, path, trust_root=root)
    clone.sign_commits_with(keys["promoter"].read_bytes())  # as a worker whose commits promoter signs
    return clone


def judged(clone: GitClone) -> list[tuple[str, bool]]:
    """prod's demo as promoted_folder and as the drift walk judge it: (revision, promoted)."""
    one = clone.promoted_folder("prod", "demo")
    walk = PromotedFolders(clone.plumbing, clone.trusted, clone.reading).of("prod", ["demo"])["demo"]
    return [(one.revision, one.promoted), (walk.revision, walk.promoted)]


def test_an_old_signed_branch_commit_merged_again_makes_no_folder_promoted(
    signed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = signed
    branch, main = merged_branch(origin, keys, root)
    merge = plumb(
        origin, "commit-tree", evil_tree(origin, main), "-p", main, "-p", branch,
        data=b"Merge pull request #7 from revert/demo/prod/x\n",
    )  # fmt: skip
    origin.repo.git.push("-q", "origin", f"{merge}:refs/heads/main")
    clone = promoter_clone(origin, keys, root, tmp_path / "clone")
    assert all(revision != merge for revision, _ in judged(clone)), judged(clone)


def test_a_message_holding_the_log_s_separators_makes_up_no_merge_of_promoter_s(
    signed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = signed
    branch, main = merged_branch(origin, keys, root)
    tree = evil_tree(origin, main)
    first = plumb(origin, "commit-tree", tree, "-p", main, data=b"tweak\n")
    fake = (
        f"tweak\x1e{first}\x1f{main} {branch}\x1fpromoter <promoter@localhost>\x1f"
        f"Merge pull request #7 from revert/demo/prod/x\x1e\n\x1dcommit\x1f{first}\x1f{main} {branch}\x1f"
        "promoter <promoter@localhost>\x1fMerge pull request #7 from revert/demo/prod/x\x1e\n"
    )
    origin.repo.git.checkout("-q", "--detach", first)
    path = origin.work / DEPLOYMENT
    path.write_text(path.read_text() + "# again\n")
    origin.repo.git.add(DEPLOYMENT)
    second = plumb(origin, "commit-tree", origin.repo.git.write_tree(), "-p", first, data=fake.encode())
    origin.repo.git.checkout("-q", "-f", "main")
    origin.repo.git.push("-q", "origin", f"{second}:refs/heads/main")
    clone = promoter_clone(origin, keys, root, tmp_path / "clone")
    assert all(revision not in (first, second) for revision, _ in judged(clone)), judged(clone)


def test_a_name_holding_the_log_s_separators_rewrites_no_other_commit_s_people(
    signed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = signed
    dev = "environments/dev/demo/deployment.yaml"
    text = (origin.work / dev).read_text()
    theirs = commit_signed(origin, keys["platform"], {dev: text + "# v\n"}, "V: dana's change, signed")
    origin.repo.git.checkout("-q", "--detach", theirs)
    (origin.work / dev).write_text(text + "# v\n# p\n")
    origin.repo.git.add(dev)
    name = f"Mallory\x1fm@x\x1fMallory\x1fm@x\x1fN\x1f\x1f\x1e{theirs}\x1fBob"
    who = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": "bob@x",
        "GIT_COMMITTER_NAME": "Bob",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    pushed = plumb(origin, "commit-tree", origin.repo.git.write_tree(), "-p", theirs, data=b"P\n", env=who)
    origin.repo.git.checkout("-q", "-f", "main")
    origin.repo.git.push("-q", "origin", f"{pushed}:refs/heads/main")
    found = GitClone(origin.url, tmp_path / "clone", trust_root=root).authors(pushed, "prod", ["demo"])
    by_commit = {t.commit: t for t in found.touches}
    assert "cannot be read" in found.unknown or (
        by_commit[theirs].author.startswith("dana") and by_commit[theirs].signer
    ), found
