"""Which break-glass reaches the trusted rules revision (promoter.breakglass, promoter.git.rules), with real
git and keys made by ssh-keygen: a commit signed by promoter's own key (listed for `promoter` in the
trusted trust/allowed_signers), whose trailer block names the break-glass, and that adds exactly its own
file under trust/break-glass/, is taken in; the same file unsigned, signed by another key, under another
ID, or beside any other change of the rule files, is an untrusted change and counts for nothing; and
the policy bundle read at the trusted revision carries only the trusted ones (data.break_glass)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from activities.policy import PolicyActivities
from promoter.gitrepo import GitClone
from promoter.policy.embedded import EmbeddedEngine
from tests.support.gitops import Origin
from tests.support.keys import commit_signed, keygen

GLASS = {
    "app": "demo",
    "env": "prod",
    "reason": "fix for incident 4711",
    "requested_by": "alice",
    "until": "2026-12-03T18:00:00Z",
    "approved_at": "2026-12-03T09:00:00Z",
    "approved_by": ["bob", "carol"],
}


@pytest.fixture
def keyed(origin_factory: Callable[..., Origin], tmp_path: Path) -> tuple[Origin, dict[str, Path], str]:
    """An origin whose trust/allowed_signers lists platform for git and promoter (promoter's own key);
    its main then is the trust root."""
    keys = {name: tmp_path / name for name in ("platform", "promoter", "mallory")}
    public = {name: keygen(path) for name, path in keys.items()}
    origin = origin_factory()
    allowed = f'platform namespaces="git" {public["platform"]}\npromoter namespaces="git" {public["promoter"]}\n'
    root = origin.commit({"trust/allowed_signers": allowed}, "trust: who signs")
    return origin, keys, root


def sealed(gid: str) -> str:
    return (
        f"break-glass(demo): prod through a freeze\n\nApproved.\n\n"
        f"Promoter-Break-Glass: {gid} fix for incident 4711 until 2026-12-03T18:00:00Z\n"
        "Promoter-Break-Glass-App: demo\nPromoter-Break-Glass-Env: prod\n"
        "Promoter-Approval: bob via cli at 2026-12-03T09:00:00Z\n"
    )


def glass_data(origin: Origin, root: str, cache: Path) -> dict[str, object]:
    engine = EmbeddedEngine()
    try:
        return (
            PolicyActivities(GitClone(origin.url, cache, trust_root=root), engine).bundle().data.get("break_glass", {})
        )
    finally:
        engine.close()


def test_promoters_signed_break_glass_of_exactly_its_file_is_trusted(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = keyed
    files = {"trust/break-glass/demo-prod-1.yaml": yaml.safe_dump(GLASS)}
    sha = commit_signed(origin, keys["promoter"], files, sealed("demo-prod-1"))
    rules = GitClone(origin.url, tmp_path / "cache", trust_root=root).rules()
    assert rules.commit == sha and rules.untrusted == []
    found = glass_data(origin, root, tmp_path / "c1")
    assert found == {"demo-prod-1": {**GLASS, "file": "trust/break-glass/demo-prod-1.yaml"}}


@pytest.mark.parametrize(
    ("signer", "files", "gid", "why"),
    [
        (None, {"trust/break-glass/demo-prod-1.yaml": "x"}, "demo-prod-1", "unsigned"),
        ("mallory", {"trust/break-glass/demo-prod-1.yaml": "x"}, "demo-prod-1", "mallory's key"),
        ("promoter", {"trust/break-glass/demo-prod-2.yaml": "x"}, "demo-prod-1", "another ID's file"),
        (
            "promoter",
            {"trust/break-glass/demo-prod-1.yaml": "x", "policies/notes.txt": "and this"},
            "demo-prod-1",
            "more than its file",
        ),
        ("promoter", {"trust/break-glass/demo-prod-1.yaml": "x"}, "", "no break-glass trailer"),
        # a rules key vouches for rule changes, never for a break-glass: only promoter's seal after its gate
        ("platform", {"trust/break-glass/demo-prod-1.yaml": "x"}, "demo-prod-1", "the rules key, sealed"),
        ("platform", {"trust/break-glass/demo-prod-1.yaml": "x"}, "", "the rules key, by hand"),
        (
            "platform",
            {"trust/break-glass/demo-prod-1.yaml": "x", "policies/notes.txt": "and this"},
            "",
            "the rules key, beside a rule change",
        ),
    ],
)
def test_any_other_break_glass_is_untrusted_and_not_loaded(
    keyed: tuple[Origin, dict[str, Path], str],
    tmp_path: Path,
    signer: str | None,
    files: dict[str, str],
    gid: str,
    why: str,
) -> None:
    origin, keys, root = keyed
    text = {p: yaml.safe_dump(GLASS) if p.startswith("trust/") else t for p, t in files.items()}
    message = sealed(gid) if gid else "break-glass by hand"
    sha = commit_signed(origin, keys[signer] if signer else None, text, message)
    rules = GitClone(origin.url, tmp_path / "cache", trust_root=root).rules()
    assert rules.commit == root and [c.commit for c in rules.untrusted] == [sha], why
    assert glass_data(origin, root, tmp_path / "c1") == {}, why
