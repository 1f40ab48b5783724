"""The trusted rules revision, with real git and keys made by ssh-keygen: from the trust root, a push to
main that changes a rule file (policies/, an environment.yaml, trust/) is used only once a key that
trust/allowed_signers of the revision before lists for `git` signed it (`git commit -S`, gpg.format ssh),
or once a merge brings exactly such a signed commit; an unsigned one, one signed by a key listed only for
approvals, by promoter's own key or by an unknown key is reported and not used. Planning reads the
environments and trust/ at that revision; `source.require_signed` names the unsigned commits of a range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promoter.gitrepo import GitClone
from promoter.models import PlanInput
from tests.support.gitops import Origin
from tests.support.keys import commit_signed, keygen


@pytest.fixture
def keyed(origin_factory: Callable[..., Origin], tmp_path: Path) -> tuple[Origin, dict[str, Path], str]:
    """An origin whose trust/allowed_signers lists platform for git, alice for approvals only and promoter
    for git; its main then is the trust root."""
    keys = {name: tmp_path / name for name in ("platform", "alice", "promoter", "mallory")}
    public = {name: keygen(path) for name, path in keys.items()}
    origin = origin_factory()
    allowed = (
        f'platform namespaces="git" {public["platform"]}\n'
        f'alice namespaces="promoter-approval" {public["alice"]}\n'
        f'promoter namespaces="git" {public["promoter"]}\n'
    )
    root = origin.commit({"trust/allowed_signers": allowed}, "trust: who signs rule changes")
    return origin, keys, root


def prod_yaml(origin: Origin, old: str, new: str) -> dict[str, str]:
    path = "environments/prod/environment.yaml"
    text = (origin.work / path).read_text()
    assert old in text
    return {path: text.replace(old, new)}


def test_only_signed_rule_changes_are_used(keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path) -> None:
    origin, keys, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    assert clone.rules().commit == root and clone.rules().untrusted == []
    origin.bump()  # not a rule change: nothing to trust
    assert clone.rules().commit == root
    weaker = origin.commit(prod_yaml(origin, "required: 1", "required: 0"), "prod needs no approval")  # unsigned
    rules = clone.rules()
    assert rules.commit == root and [(c.commit, c.reason) for c in rules.untrusted] == [(weaker, "unsigned")]
    assert rules.untrusted[0].author == "dana <dana@example.com>"
    assert f"main has untrusted rule changes since {root[:12]}: {weaker[:12]} by dana" in rules.notice()
    plan = clone.plan(PlanInput(app="demo"))
    prod = plan.environments[-1].config
    assert prod.approval.required == 1 and plan.rules.commit == root  # judged by the trusted rules
    # keys that do not count for rule changes
    for who, why in (("alice", "does not list for git"), ("promoter", "promoter's own key"), ("mallory", "not list")):
        sha = commit_signed(origin, keys[who], {"policies/notes.txt": who}, f"signed by {who}")
        assert any(c.commit == sha and why in c.reason for c in clone.rules().untrusted), (who, clone.rules())
    # the platform key takes in the tree as it signs it (the unsigned change included): used from now on
    signed = commit_signed(origin, keys["platform"], {"policies/notes.txt": "reviewed"}, "platform: reviewed")
    rules = clone.rules()
    assert rules.commit == signed and rules.untrusted == []
    assert clone.plan(PlanInput(app="demo")).environments[-1].config.approval.required == 0


def test_a_merge_of_a_signed_change_is_trusted_and_a_changed_back_one_is_not_reported(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    merged = commit_signed(origin, keys["platform"], {"policies/notes.txt": "via a PR"}, "platform: a PR", merge=True)
    assert clone.rules().commit == merged and clone.rules().untrusted == []
    text = (origin.work / "policies/notes.txt").read_text()
    origin.commit({"policies/notes.txt": "sneaky"}, "unsigned")
    assert [c.reason for c in clone.rules().untrusted] == ["unsigned"]
    back = origin.commit({"policies/notes.txt": text}, "unsigned, back as it was")
    assert clone.rules().untrusted == []  # the trusted rules again, by a newer name
    assert clone.rules().commit == back and clone.policy_files(back)[0] == clone.policy_files(merged)[0]


def test_without_a_trust_root_main_is_used_and_a_root_off_main_is_refused(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, _, root = keyed
    changed = origin.commit(prod_yaml(origin, "required: 1", "required: 0"), "unsigned")
    origin.bump()
    open_clone = GitClone(origin.url, tmp_path / "open")
    assert open_clone.rules().commit == changed and open_clone.rules().root is None  # the last rule change
    stray = GitClone(origin.url, tmp_path / "stray", trust_root="1" * 40)
    with pytest.raises(Exception, match="PROMOTER_TRUST_ROOT.*is not a commit of main"):
        stray.rules()


def test_unsigned_source_names_each_unsigned_commit_of_the_range(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, keys, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    unsigned = origin.bump(tag="1.1.0")
    signed = commit_signed(
        origin, keys["platform"], {"environments/dev/demo/extra.txt": "x"}, "platform: a signed app change"
    )
    found = clone.unsigned_source(signed, "dev", "staging", ["demo"])
    assert [c.commit for c in found] == [unsigned] and "not signed" in found[0].reason
    assert clone.unsigned_source(root, "dev", "staging", ["demo"]) == []  # the root is trusted as it is
