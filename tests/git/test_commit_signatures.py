"""Git commits signed with SSH keys, both ways with the real git and ssh-keygen: a commit `git commit -S`
signed (gpg.format ssh) is verified by promoter.signing.commit_signer as `git verify-commit` verifies it,
and a commit promoter signs passes `git verify-commit`. An unsigned commit, a key not listed for the
namespace `git`, a revoked key and a changed commit are each refused with their own line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from promoter import signing
from promoter.signing import SignatureError


def run(*args: str, cwd: Path, data: bytes | None = None) -> bytes:
    done = subprocess.run(list(args), cwd=cwd, input=data, capture_output=True, check=True)
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path, str]:
    """A repository with one commit, and an ed25519 key (its public line) made by ssh-keygen."""
    key = tmp_path / "platform"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    run("git", "init", "-q", "-b", "main", cwd=work)
    (work / "a").write_text("a\n")
    run("git", "add", "a", cwd=work)
    run("git", "-c", "user.name=pat", "-c", "user.email=pat@example.com", "commit", "-qm", "one", cwd=work)
    return work, key, " ".join(key.with_suffix(".pub").read_text().split()[:2])


def git_signed_commit(work: Path, key: Path) -> bytes:
    (work / "b").write_text("b\n")
    run("git", "add", "b", cwd=work)
    config = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub", "-c", "user.name=pat"]
    run("git", *config, "-c", "user.email=pat@example.com", "commit", "-q", "-S", "-m", "signed", cwd=work)
    return run("git", "cat-file", "commit", "HEAD", cwd=work)


def test_git_s_signature_is_verified_and_ours_passes_git_verify_commit(repo: tuple[Path, Path, str]) -> None:
    work, key, public = repo
    allowed = f'platform namespaces="git" {public}\n'
    raw = git_signed_commit(work, key)
    verified = signing.commit_signer(raw, allowed)
    assert verified.principal == "platform" and verified.fingerprint.startswith("SHA256:")
    # ours: the HEAD commit signed again by promoter, written as an object, checked by git itself
    unsigned = signing.commit_signature(raw)
    assert unsigned is not None
    ours = signing.sign_commit(unsigned[0], key.read_bytes())
    sha = run("git", "hash-object", "-t", "commit", "-w", "--stdin", cwd=work, data=ours).decode().strip()
    (work.parent / "allowed").write_text(allowed)
    checked = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={work.parent / 'allowed'}", "verify-commit", sha],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert 'Good "git" signature for platform' in checked.stderr
    assert signing.commit_signer(ours, allowed).principal == "platform"


def test_each_untrusted_commit_is_refused_with_its_reason(repo: tuple[Path, Path, str]) -> None:
    work, key, public = repo
    unsigned = run("git", "cat-file", "commit", "HEAD", cwd=work)
    with pytest.raises(SignatureError, match="not signed with an SSH key"):
        signing.commit_signer(unsigned, f"platform {public}\n")
    raw = git_signed_commit(work, key)
    with pytest.raises(SignatureError, match="does not list for git"):
        signing.commit_signer(raw, f'platform namespaces="promoter-approval" {public}\n')
    with pytest.raises(SignatureError, match="does not list for git"):
        signing.commit_signer(raw, "")
    with pytest.raises(SignatureError, match="revoked"):
        signing.commit_signer(raw, f"platform {public}\n", f"{public}\n")
    changed = raw.replace(b"signed", b"signeD")
    with pytest.raises(SignatureError, match="does not match the commit"):
        signing.commit_signer(changed, f"platform {public}\n")
    with pytest.raises(SignatureError, match="not valid|does not list"):  # outside the key's validity
        signing.commit_signer(raw, f'platform valid-before="20000101" {public}\n')
