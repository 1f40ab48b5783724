"""SSH keys made by the real ssh-keygen, and commits signed with them by the real git, as a person makes
them (`git commit -S` with gpg.format ssh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.gitops import Origin


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def commit_signed(origin: Origin, key: Path | None, files: dict[str, str], message: str, merge: bool = False) -> str:
    """Write `files`, commit (signed with `key` when given; on a branch merged with --no-ff when `merge`),
    push to main; returns main's new commit."""
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    if merge:
        repo.git.checkout("-q", "-b", "change")
    for rel, text in files.items():
        (origin.work / rel).parent.mkdir(parents=True, exist_ok=True)
        (origin.work / rel).write_text(text)
        repo.git.add(rel)
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub", "commit", "-S"] if key else ["commit"]
    repo.git.execute(["git", *sign, "-q", "-m", message])
    if merge:
        repo.git.checkout("-q", "main")
        repo.git.merge("--no-ff", "-q", "-m", "Merge the signed change", "change")  # the merge itself unsigned
        repo.git.branch("-q", "-D", "change")
    repo.git.push("--quiet", "origin", "main")
    return repo.head.commit.hexsha
