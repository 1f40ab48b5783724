"""The trusted rules revision, with real git and keys made by ssh-keygen: from the trust root, a push to
main that changes a rule file (policies/, an environment.yaml, trust/) is used only once a key that
trust/allowed_signers of the revision before lists for `git` signed it (`git commit -S`, gpg.format ssh),
or once a merge brings exactly such a signed commit; an unsigned one, one signed by a key listed only for
approvals, by promoter's own key or by an unknown key is reported and not used. Resolving reads the
environments and trust/ at that revision; `source.require_signed` names the unsigned commits of a range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promoter.errors import BadInput
from promoter.gitrepo import GitClone
from promoter.models import PromotionRequest
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
    plan = clone.resolve(PromotionRequest(app="demo"))
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
    assert clone.resolve(PromotionRequest(app="demo")).environments[-1].config.approval.required == 0


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


def test_an_old_signed_commit_merged_again_rolls_nothing_back(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    """The platform key signed A (prod needs no approval), then B (back to one): an unsigned merge that
    brings A in again, with A's rules, is not trusted, since A was not made on top of today's rules."""
    origin, keys, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    loose = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 0"), "A: loosen")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 0", "required: 1"), "B: back")
    assert clone.rules().commit == strict
    repo = origin.repo
    tree = repo.git.execute(["git", "rev-parse", f"{loose}^{{tree}}"])
    replay = repo.git.execute(["git", "commit-tree", tree, "-p", strict, "-p", loose, "-m", "Merge A again"])
    repo.git.push("-q", "origin", f"{replay}:refs/heads/main")
    rules = clone.rules()
    assert rules.commit == strict and [c.commit for c in rules.untrusted] == [replay], rules


def test_a_key_listed_for_promoter_on_any_line_never_vouches_for_rules(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    bot = tmp_path / "bot"
    origin = origin_factory()
    root = origin.commit({"trust/allowed_signers": f'bot,promoter namespaces="git" {keygen(bot)}\n'}, "trust")
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    signed = commit_signed(origin, bot, {"policies/notes.txt": "x"}, "signed by a key promoter signs with")
    assert [c.commit for c in clone.rules().untrusted] == [signed]
    assert "promoter's own key" in clone.rules().untrusted[0].reason


def test_a_look_alike_promotion_merge_narrows_no_range_when_promoter_signs(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    """A person pushes a merge that looks like promoter's promotion of an unsigned commit U into prod:
    with promoter signing its commits, the range still starts before U (U stays unsigned, its author an
    author)."""
    origin, keys, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    clone.sign_commits_with(keys["promoter"].read_bytes())
    unsigned = origin.bump(tag="6.6.6")
    repo = origin.repo
    main = repo.head.commit.hexsha
    (origin.work / "environments/prod/demo/NOTES.md").write_text("notes\n")
    repo.git.add("-A")
    tree = repo.git.write_tree()
    branch = repo.git.execute(
        ["git", "commit-tree", tree, "-p", main, "-m", f"promote(demo): prod <- dev\n\nPromoted-Commit: {unsigned}\n"]
    )
    fake = repo.git.execute(
        ["git", "commit-tree", tree, "-p", main, "-p", branch, "-m",
         "Merge pull request #999 from promote/demo/prod/abcdef0\n\nnotes\n\nPromoter-Promotion: promote-demo\n"]
    )  # fmt: skip
    repo.git.push("-q", "origin", f"{fake}:refs/heads/main")
    assert [c.commit for c in clone.unsigned_source(unsigned, "dev", "prod", ["demo"])] == [unsigned]
    assert "dana <dana@example.com>" in {t.author for t in clone.authors(unsigned, "prod", ["demo"]).touches}


def test_a_revert_holds_content_even_when_main_s_environments_are_broken_unsigned(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    origin, _, root = keyed
    clone = GitClone(origin.url, tmp_path / "cache", trust_root=root)
    held = origin.bump(tag="7.0.0")
    origin.commit(prod_yaml(origin, "order: 3", "order: 2"), "unsigned: prod clashes with staging")
    assert clone.held_trees(held, ["demo"]) == {
        "environments/dev/demo": clone.folder_trees(held, ["environments/dev/demo"])["environments/dev/demo"]
    }


def fast_forward_merge(origin: Origin, tree_of: str, first: str, second: str, message: str) -> str:
    """Push to main a merge with `tree_of`'s files whose first parent is `first` and second `second`
    (main itself, so the push is a fast-forward: no force-push, nothing branch protection refuses)."""
    repo = origin.repo
    tree = repo.git.execute(["git", "rev-parse", f"{tree_of}^{{tree}}"])
    merge = repo.git.execute(["git", "commit-tree", tree, "-p", first, "-p", second, "-m", message])
    repo.git.push("-q", "origin", f"{merge}:refs/heads/main")
    return merge


@pytest.mark.parametrize("indexed", [True, False], ids=["index", "git"])
def test_a_merge_whose_first_parent_is_older_than_main_undoes_no_signed_change(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool
) -> None:
    """P, then T (signed: prod needs two approvals), then M. A person pushes X = P's files with parents
    P and M: a fast-forward of main whose first-parent line skips T. Neither the clone that saw M nor a
    fresh one takes X's rules (T's stay), and each names X; with the index of main or by git alone."""
    from promoter.git import index

    if not indexed:
        monkeypatch.setattr(index, "view", lambda *_: None)
    origin, keys, root = keyed
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    before = origin.bump(tag="2.0.0")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "T: two")
    main = origin.bump(tag="2.0.1")
    assert seen.rules(main).commit == strict
    undoing = fast_forward_merge(origin, before, before, main, "Merge main into an old branch")
    for clone in (seen, GitClone(origin.url, tmp_path / "fresh", trust_root=root)):
        rules = clone.rules()
        assert rules.commit == strict and [c.commit for c in rules.untrusted] == [undoing], rules
        assert clone.resolve(PromotionRequest(app="demo")).environments[-1].config.approval.required == 2
    # the same through a changed-back commit first, and a merge inside the merge: still named, not used
    origin.repo.git.pull("-q", "--rebase", "origin", "main")
    back = origin.commit(prod_yaml(origin, "required: 2", "required: 1"), "unsigned: back to one")
    nested = fast_forward_merge(origin, before, before, back, "inner")
    outer = fast_forward_merge(origin, before, before, nested, "outer")
    rules = GitClone(origin.url, tmp_path / "nested", trust_root=root).rules()
    assert rules.commit == strict and {back, nested} <= {c.commit for c in rules.untrusted}, rules
    assert outer not in {c.commit for c in rules.untrusted}  # the same files as the merge it brings: no change


def test_main_merged_into_an_old_branch_and_pushed_keeps_its_trusted_rules(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    """The honest shape of the same push: the merge keeps main's rules (T's), so nothing is untrusted."""
    origin, keys, root = keyed
    before = origin.bump(tag="3.0.0")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "T: two")
    main = origin.bump(tag="3.0.1")
    merged = fast_forward_merge(origin, main, before, main, "Merge main into an old branch")
    rules = GitClone(origin.url, tmp_path / "fresh", trust_root=root).rules()
    assert rules.untrusted == [] and rules.commit in (merged, strict), rules


def test_an_old_signed_commit_put_on_main_s_line_by_a_merge_undoes_nothing_unseen(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    """O: signed by the platform key on a branch from the root, never merged (a rules PR closed or rebased
    since). S: signed on main, prod needs two approvals; then N. A person pushes M = O's files with
    parents O and N (a fast-forward). The clone that saw N goes on from there: S's rules stay, O (now on
    main's line) is named as made on older rules; so does a new process of that clone (from its mark).
    A fresh clone cannot tell which line was main: it takes no rules (which would judge promotions by
    O's, whichever order it met them in) and says how to settle it; a signed change on top of main does."""
    origin, keys, root = keyed
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    repo.git.checkout("-q", "-b", "closed-pr")
    (origin.work / "policies/notes.txt").write_text("an old PR")
    repo.git.add("policies/notes.txt")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['platform']}.pub", "commit", "-S"]
    repo.git.execute(["git", *sign, "-q", "-m", "O: a closed rules PR"])  # never pushed to main
    old = repo.head.commit.hexsha
    repo.git.checkout("-q", "main")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    main = origin.bump(tag="4.0.0")
    assert seen.rules(main).commit == strict
    pushed = fast_forward_merge(origin, old, old, main, "Merge main into a closed PR's branch")
    rules = seen.rules()
    assert rules.commit == strict and {old, pushed} & {c.commit for c in rules.untrusted}, rules
    assert seen.resolve(PromotionRequest(app="demo")).environments[-1].config.approval.required == 2
    assert seen.rules(root).commit == root  # an older main asked (a branch's base) moves nothing back
    later = origin.bump(tag="4.0.1")
    assert seen.rules(later).commit == strict
    again = GitClone(origin.url, seen.plumbing.path.parent, trust_root=root).rules()  # a new process, same cache
    assert again.commit == strict and {old, pushed} & {c.commit for c in again.untrusted}, again
    fresh = GitClone(origin.url, tmp_path / "fresh", trust_root=root)
    with pytest.raises(BadInput, match="cannot tell which rules are in force: sign a rules change") as refused:
        fresh.rules()
    assert old[:12] in str(refused.value) or strict[:12] in str(refused.value)
    with pytest.raises(BadInput, match="cannot tell which rules are in force"):  # every worker's, every time
        fresh.resolve(PromotionRequest(app="demo"))
    assert seen.rules().commit == strict  # a clone that saw main is not stopped
    origin.repo.git.pull("-q", "--rebase", "origin", "main")
    settled = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "two again")
    assert fresh.rules().commit == settled and seen.rules().commit == settled
    assert fresh.resolve(PromotionRequest(app="demo")).environments[-1].config.approval.required == 2


def test_two_rules_prs_signed_on_the_same_rules_stop_a_new_clone_until_signed_again(
    keyed: tuple[Origin, dict[str, Path], str], tmp_path: Path
) -> None:
    """Two rules PRs, each signed on the same trusted revision, both merged (merge commits): the second
    is made on older rules than the first. The clone that saw the first merged goes on with it and
    names the second; a new clone, to which this looks like the pushed-merge attack above, takes no
    rules until the second is signed again on top of main."""
    origin, keys, root = keyed
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    base = repo.head.commit.hexsha
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['platform']}.pub", "commit", "-S", "-q"]
    for branch, note in (("first-pr", "first"), ("second-pr", "second")):
        repo.git.checkout("-q", "-b", branch, base)
        (origin.work / f"policies/{note}.txt").write_text(note)
        repo.git.add(f"policies/{note}.txt")
        repo.git.execute(["git", *sign, "-m", f"rules: the {note} PR"])
    repo.git.checkout("-q", "main")
    repo.git.merge("--no-ff", "-q", "-m", "Merge the first PR", "first-pr")
    repo.git.push("--quiet", "origin", "main")
    first = seen.rules()
    assert first.commit == repo.head.commit.hexsha and first.untrusted == []
    repo.git.merge("--no-ff", "-q", "-m", "Merge the second PR", "second-pr")
    repo.git.push("--quiet", "origin", "main")
    second = repo.git.rev_parse("second-pr")
    rules = seen.rules()
    assert rules.commit == first.commit and second in {c.commit for c in rules.untrusted}, rules
    fresh = GitClone(origin.url, tmp_path / "fresh", trust_root=root)
    with pytest.raises(BadInput, match=f"leaves out {second[:12]} "):
        fresh.rules()
    again = commit_signed(origin, keys["platform"], {"policies/second.txt": "second, signed again"}, "rules: again")
    assert fresh.rules().commit == again == seen.rules().commit
