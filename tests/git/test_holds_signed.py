"""Holds on content, lifted only by promoter's own signed commit (issue 24, part 3).

The pure rules first (promoter.holds): only a message's trailer block counts; a hold counts signed or
not; a lift counts only when promoter's key signed it, and lifts holds recorded before it; a commit
is held by its SHA or by the tree of its app's source folder. Then the real thing on a real origin,
without Temporal (the activities run in temporalio's ActivityEnvironment): a revert holds the content,
an identical commit is refused naming the revert's PR, a hand-written lift (unsigned, or signed by
a person's own key) lifts nothing, a lift-hold PR merged by hand before its gate lifts nothing, and the
approved lift (promoter's commit, signed after the approvals) lifts it; git itself verifies
promoter's signatures."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities
from activities.revert import RevertActivities
from promoter import holds, signing
from promoter.errors import BadInput
from promoter.forges import Forge
from promoter.forges.github import GitHubForge
from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from promoter.models import LiftHoldInput, MergePullRequest, PrepareInput, PromotionRequest, RevertInput
from promoter.stack import demo_keys, seed_origin
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import Origin, make_gitops

BAD = "a" * 40
APPROVED = "Promoter-Approval: bob via cli at 2026-01-01T00:00:00Z: ok"

# --- the pure rules -----------------------------------------------------------------------------------


def hold_message(commit: str = BAD, env: str = "prod", trees: dict[str, str] | None = None, pr: str = "") -> str:
    return "Merge pull request #7 from revert/demo/prod/1234567\n\nRevert\n\n" + holds.trailers(
        "demo", env, commit, "ProgressDeadlineExceeded", pr, trees
    )


def lift_message(commit: str = BAD, env: str = "prod") -> str:
    return "lift-hold(demo): prod may take it again\n\n" + holds.lift_trailers(
        "demo", env, commit, "alice", "the cluster was at fault", [APPROVED]
    )


def always(_: str, __: str) -> bool:
    return True


def test_only_the_last_paragraph_of_a_message_is_its_trailer_block() -> None:
    assert holds.trailer_block("subject\n\nbody\n\nA-Key: 1\nB: two words\n") == [("A-Key", "1"), ("B", "two words")]
    assert holds.trailer_block("subject\n\nPromoter-Release-Hold: x\n\nthen prose\n") == []  # not the last
    assert holds.trailer_block("subject\n\nA: 1\nnot a trailer\n") == []  # a block is trailers only
    assert holds.trailer_block("Promoter-Release-Hold: x") == []  # a subject alone is no block
    # the old parser took any such line anywhere; holds and lifts no longer do
    middle = f"subject\n\n{lift_message().split(chr(10), 2)[2]}\nand a closing paragraph\n\nSigned-off-by: x\n"
    assert ("Promoter-Release-Hold", BAD) in holds.parse_trailers(middle)
    assert not holds.is_lift(middle)


def test_a_hold_counts_signed_or_not_and_only_promoters_signed_lift_lifts_it() -> None:
    hold = holds.Record("h" * 40, hold_message(pr="https://forge/pulls/7"))
    assert [h.commit for h in holds.current("demo", [hold], always)] == [BAD]  # unsigned: held (fail closed)
    forged = holds.Record("r" * 40, lift_message(), signed=False)
    assert [h.commit for h in holds.current("demo", [hold, forged], always)] == [BAD]
    other_env = holds.Record("s" * 40, lift_message(env="staging"), signed=True)
    assert holds.current("demo", [hold, other_env], always) != []
    lift = holds.Record("r" * 40, lift_message(), signed=True)
    assert holds.current("demo", [hold, lift], always) == []
    assert holds.current("other", [hold], always) == []  # another app is not held
    # a lift lifts the holds recorded before it (its ancestors), never a later hold of the same commit
    later = holds.Record("l" * 40, hold_message())
    before: dict[tuple[str, str], bool] = {(hold.sha, lift.sha): True, (later.sha, lift.sha): False}
    left = holds.current("demo", [hold, lift, later], lambda a, b: before[(a, b)])
    assert [h.recorded_in for h in left] == [later.sha]
    # a signed commit whose lift lines are not its trailer block lifts nothing
    buried = holds.Record("b" * 40, lift_message() + "\nA closing paragraph.\n", signed=True)
    assert holds.lift(buried) is None


def test_a_commit_is_held_by_its_sha_or_by_the_tree_of_its_source_folder() -> None:
    folder = "environments/dev/demo"
    new = holds.Record("n" * 40, hold_message(trees={folder: "t" * 40}, pr="https://forge/pulls/7"))
    old = holds.Record("o" * 40, hold_message(commit="c" * 40))  # written before holds were on content
    in_force = holds.current("demo", [new, old], always)
    trees = {folder: "t" * 40}
    assert holds.find(in_force, "prod", BAD, lambda f: "") == in_force[0]
    same = holds.find(in_force, "prod", "d" * 40, lambda f: trees.get(f, ""))
    assert same is not None and same.commit == BAD
    said = same.refusal("d" * 40)
    assert said.startswith(f"demo @ ddddddd has the same content as {BAD[:7]}, held out of prod by the revert in PR #7")
    assert "(ProgressDeadlineExceeded; https://forge/pulls/7)" in said
    assert f"promoter lift-hold demo --env prod --commit {BAD[:12]}" in said
    assert holds.find(in_force, "staging", "d" * 40, lambda f: trees.get(f, "")) is None  # per environment
    assert holds.find(in_force, "prod", "d" * 40, lambda f: "u" * 40) is None  # other content
    # the old hold, without a tree, holds its commit only
    assert holds.find(in_force, "prod", "c" * 40, lambda f: "") is not None
    assert holds.find(in_force, "prod", "e" * 40, lambda f: "x") is None


def test_only_keys_listed_for_the_principal_promoter_sign_lifts() -> None:
    text = (
        "# comment\n"
        'promoter namespaces="git" ssh-ed25519 AAAA1\n'
        'platform namespaces="git" ssh-ed25519 AAAA2\n'
        'alice,promoter namespaces="git" ssh-ed25519 AAAA3\n'
        'promoter-bot namespaces="git" ssh-ed25519 AAAA4\n'
    )
    kept = holds.promoter_signers(text)
    assert "AAAA1" in kept and "AAAA3" in kept and "AAAA2" not in kept and "AAAA4" not in kept


# --- on a real origin ---------------------------------------------------------------------------------


class World:
    """An origin whose trust/allowed_signers lists promoter's key (principal promoter) and mallory's
    (principal mallory), both for git; promoter's clone signing with its key; the local forge."""

    def __init__(self, tmp: Path, sign: bool = True, trust_root: bool = False, github: bool = False) -> None:
        self.keys = tmp / "keys"
        public = demo_keys(self.keys, ("promoter", "mallory"))
        src = make_gitops(tmp)
        (src / "trust").mkdir(exist_ok=True)
        self.allowed = "".join(f'{name} namespaces="git" {key}\n' for name, key in public.items())
        (src / "trust" / "allowed_signers").write_text(self.allowed)
        seed = seed_origin(src, tmp / "origin.git")
        self.origin = Origin(tmp / "origin.git", tmp / "person")
        self.clone = GitClone(self.origin.url, tmp / "cache", trust_root=seed if trust_root else None)
        if sign:
            self.clone.sign_commits_with((self.keys / "promoter").read_bytes())
        self.forge: Forge = LocalForge(self.clone, tmp / "forge.sqlite")
        self.github: GitHubStandIn | None = None
        if github:  # merges are GitHub's own (plain git, unsigned), as on a hosted forge
            self.github = GitHubStandIn(origin=self.origin.url, tokens={"token": "promoter-bot"}).start()
            self.forge = GitHubForge("acme/gitops", "token", api_url=self.github.url)
        self.forge_acts = ForgeActivities(self.forge, self.clone)
        self.tmp = tmp

    def verify(self, commit: str) -> subprocess.CompletedProcess[str]:
        """`git verify-commit`, as anyone checks promoter's commits."""
        signers = self.tmp / "allowed_signers"
        signers.write_text(self.allowed)
        return subprocess.run(
            ["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", commit],
            cwd=self.origin.path,
            capture_output=True,
            text=True,
        )

    def promote_and_revert(self, tag: str = "6.6.6") -> tuple[str, int]:
        """dev gets a commit, promoter merges it into staging and reverts it: (the commit, the revert's PR)."""
        bad = self.origin.bump(tag=tag)
        return bad, self.revert(bad)

    def revert(self, bad: str) -> int:
        """Promoter merges `bad` into staging, and reverts it as unhealthy: the revert's PR."""
        change = PrepareInput(
            app="demo", commit=bad, source_env="dev", target_env="staging", local_files=["configmap.yaml"]
        )
        prepared = self.clone.push_branch(change)
        assert prepared.branch is not None
        pr = self.forge.open_pull_request(prepared.branch, f"Promote demo @ {bad[:7]} to staging", "body")
        merged = self.forge.merge(pr.number, f"Merge pull request #{pr.number} from {prepared.branch}\n\npromote")
        assert merged.merge_commit is not None
        reverted = ActivityEnvironment().run(
            RevertActivities(self.clone, self.forge).revert,
            RevertInput(
                app="demo",
                env="staging",
                merge_commit=merged.merge_commit,
                pr_number=pr.number,
                reason="ProgressDeadlineExceeded: demo did not roll out",
                commit=bad,
            ),
        )
        assert reverted.pr_number is not None
        return reverted.pr_number

    def refusal(self, commit: str) -> str:
        with pytest.raises(BadInput) as held:
            self.clone.resolve(PromotionRequest(app="demo", commit=commit, to_env="staging"))
        return str(held.value)

    def person_commits(self, message: str, sign_with: str | None = None) -> str:
        """A person's commit on main (empty), unsigned or signed with their own key by git itself."""
        repo = self.origin.repo
        repo.git.pull("--quiet", "--rebase", "origin", "main")
        config = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.keys / sign_with}"] if sign_with else []
        repo.git.execute(
            ["git", *config, "commit", "-q", "--allow-empty", *(["-S"] if sign_with else []), "-m", message]
        )
        repo.git.push("--quiet", "origin", "main")
        return repo.head.commit.hexsha

    def ask_lift(self, commit: str) -> tuple[int, str]:
        """`promoter lift-hold`'s first step: the request on its branch and the PR. (PR, head)"""
        opened = ActivityEnvironment().run(
            self.forge_acts.open_lift,
            LiftHoldInput(app="demo", env="staging", commit=commit, requested_by="alice", reason="cluster fault"),
        )
        assert opened.pr.head_sha is not None
        return opened.pr.number, opened.pr.head_sha

    def merge_lift(self, number: int, head: str) -> str:
        """The lift-hold workflow's merge, once approved (its message names the branch and the approvals)."""
        pr = self.forge.get_pull_request(number)
        message = f"Merge pull request #{number} from {pr.head}\n\n{pr.title}\n\n{APPROVED}\n"
        merged = ActivityEnvironment().run(
            self.forge_acts.merge_pull_request, MergePullRequest(number=number, comment=message, expected_head=head)
        )
        return merged.merge_commit


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def on_github(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path, github=True)
    yield world
    assert world.github is not None
    world.github.stop()


def test_the_same_content_is_held_and_a_hand_written_lift_lifts_nothing(world: World) -> None:
    bad, revert_pr = world.promote_and_revert()
    said = world.refusal(bad)
    assert f"demo @ {bad[:7]} is held out of staging" in said and f"the revert in PR #{revert_pr}" in said
    # the revert commit (promoter's, on the revert branch) carries the hold with the tree it holds, signed
    main = git.Repo(world.origin.path)
    revert_commit = main.git.rev_parse("main^2")
    tree = main.git.rev_parse(f"{bad}:environments/dev/demo")
    assert f"Promoter-Held-Tree: {tree} environments/dev/demo" in main.git.log("-1", "--format=%B", revert_commit)
    assert world.verify(revert_commit).returncode == 0
    assert world.verify("main").returncode == 0  # the local forge's merge: promoter's, signed

    # another commit with the very same content of dev/demo: held too, naming the revert
    world.origin.bump(tag="7.0.0")
    same = world.origin.bump(tag="6.6.6")
    assert same != bad and main.git.rev_parse(f"{same}:environments/dev/demo") == tree
    said = world.refusal(same)
    assert said.startswith(f"demo @ {same[:7]} has the same content as {bad[:7]}, held out of staging by the revert")
    assert f"PR #{revert_pr}" in said and "ProgressDeadlineExceeded" in said and "promoter lift-hold demo" in said
    assert (
        world.clone.resolve(PromotionRequest(app="demo", commit=same, to_env="dev")).commit == same
    )  # dev is not held

    # a person writes the lift lines by hand: unsigned, then signed by their own key (listed for git),
    # then with the lines in the middle of a commit promoter signed (its revert, merged again): nothing
    lines = (
        f"Promoter-Release-Hold: {bad}\nPromoter-Held-App: demo\nPromoter-Held-Env: staging\n"
        f"Promoter-Released-By: mallory: trust me\n{APPROVED}\n"
    )
    world.person_commits(f"lift-hold(demo): staging may take it again\n\n{lines}")
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    signed = world.person_commits(f"lift it\n\n{lines}", sign_with="mallory")
    assert world.verify(signed).returncode == 0  # a good signature, but not promoter's
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    assert "has the same content" in world.refusal(same)
    with pytest.raises(BadInput, match="is not held"):
        world.clone.held("demo", "staging", world.origin.bump(tag="8.0.0"))
    events = world.clone.history("demo")
    assert [e.kind for e in events if e.env == "staging"][:2] == ["reverted", "promoted"]  # no lift shown


def test_a_lift_hold_pr_merged_by_hand_before_its_gate_lifts_nothing_and_the_approved_one_does(world: World) -> None:
    bad, _ = world.promote_and_revert()
    world.origin.bump(tag="7.0.0")
    same = world.origin.bump(tag="6.6.6")
    number, request = world.ask_lift(same)  # asked by a commit of the same content: the hold of `bad`
    assert world.forge.get_pull_request(number).title == f"Lift the hold of demo @ {bad[:7]} in staging"
    assert world.verify(request).returncode == 0  # promoter's request, signed, that lifts nothing
    body = git.Repo(world.origin.path).git.log("-1", "--format=%B", request)
    assert not holds.is_lift(body) and holds.lift_request(body) is not None

    # a person merges the lift-hold PR on the forge before anyone approved it: the hold stays
    world.forge.merge(number, f"Merge pull request #{number} by hand")
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    with pytest.raises(
        ApplicationError, match="merged on the forge before promoter wrote the commit that lifts the hold"
    ):
        world.merge_lift(number, request)
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)

    # asked again and approved: promoter writes and signs the lift after the approvals and merges it
    number, request = world.ask_lift(bad)
    merged = world.merge_lift(number, request)
    assert world.clone.resolve(PromotionRequest(app="demo", commit=bad, to_env="staging")).commit == bad
    assert world.clone.resolve(PromotionRequest(app="demo", commit=same, to_env="staging")).commit == same
    main = git.Repo(world.origin.path)
    lift = main.git.rev_parse(f"{merged}^2")
    assert main.git.rev_parse(f"{lift}^") == request  # on top of the approved request
    message = main.git.log("-1", "--format=%B", lift)
    assert holds.is_lift(message) and APPROVED in message and "Promoter-Released-By: alice: cluster fault" in message
    assert world.verify(lift).returncode == 0 and world.verify(merged).returncode == 0
    assert world.merge_lift(number, request) == merged  # a retry merges once
    lifted = [e for e in world.clone.history("demo") if e.kind == "hold-released"]
    assert [(e.env, e.commit, e.main_commit) for e in lifted] == [("staging", bad, merged)]

    # promoted and reverted again later: the old lift does not lift the new hold of the same commit
    world.revert(bad)
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    assert "has the same content" in world.refusal(same)


def test_a_lift_hold_branch_moved_after_approval_is_not_sealed(world: World) -> None:
    bad, _ = world.promote_and_revert()
    number, request = world.ask_lift(bad)
    pr = world.forge.get_pull_request(number)
    world.origin.repo.git.fetch("--quiet", "origin", pr.head)
    world.origin.repo.git.checkout("-q", "FETCH_HEAD")
    world.origin.repo.git.commit("-q", "--allow-empty", "-m", "mine")
    world.origin.repo.git.push("--quiet", "origin", f"HEAD:refs/heads/{pr.head}")
    world.origin.repo.git.checkout("-q", "main")
    with pytest.raises(ApplicationError, match="not the approved"):
        world.merge_lift(number, request)
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)


def test_without_a_signing_key_holds_still_hold_and_no_lift_can_be_asked(tmp_path: Path) -> None:
    world = World(tmp_path, sign=False)
    bad, _ = world.promote_and_revert()
    main = git.Repo(world.origin.path)
    assert world.verify(main.git.rev_parse("main^2")).returncode != 0  # unsigned revert commit
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)  # fail closed: still held
    with pytest.raises(ApplicationError, match="no commit signing key"):
        world.ask_lift(bad)
    with pytest.raises(BadInput, match="PROMOTER_COMMIT_SIGNING_KEY"):
        world.clone.sign_commits_with(b"not a key")


def test_promoters_commits_are_signed_as_git_verify_commit_checks_them(world: World) -> None:
    sha = world.origin.bump(tag="2.0.0")
    change = PrepareInput(
        app="demo", commit=sha, source_env="dev", target_env="staging", local_files=["configmap.yaml"]
    )
    prepared = world.clone.push_branch(change)
    assert prepared.head is not None and prepared.branch is not None
    assert world.verify(prepared.head).returncode == 0  # the promotion branch's commit
    merged = world.clone.merge_branch(prepared.branch, "Merge it\n\npromote", prepared.head)
    checked = world.verify(merged)
    assert checked.returncode == 0, checked.stderr
    raw = subprocess.run(["git", "cat-file", "commit", merged], cwd=world.origin.path, capture_output=True).stdout
    assert signing.commit_signer(raw, world.allowed).principal == "promoter"


def test_a_key_listed_for_promoter_by_an_unsigned_change_of_trust_signs_no_lift(tmp_path: Path) -> None:
    """With a trust root (as `promoter up` and production set it), trust/ is read at the trusted rules
    revision: a person who lists their own key for `promoter` in an unsigned commit forges no lift."""
    world = World(tmp_path, trust_root=True)
    bad, _ = world.promote_and_revert()
    mallory = " ".join((world.keys / "mallory.pub").read_text().split()[:2])
    world.origin.commit({"trust/allowed_signers": world.allowed + f'promoter namespaces="git" {mallory}\n'}, "keys")
    lines = f"Promoter-Release-Hold: {bad}\nPromoter-Held-App: demo\nPromoter-Held-Env: staging\n"
    world.person_commits(f"lift-hold(demo): staging may take it again\n\n{lines}", sign_with="mallory")
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    assert not [e for e in world.clone.history("demo") if e.kind == "hold-released"]


def test_a_lift_holds_the_trust_of_the_trusted_rules_revision_for_its_signed_approvals(tmp_path: Path) -> None:
    """The lift-hold gate verifies signed approvals (workflows/lift_hold.py) against trust/ as the activity
    that opened it read it: at the trusted rules revision, never an unsigned change of trust/ on main."""
    world = World(tmp_path, trust_root=True)
    bad, _ = world.promote_and_revert()
    trusted = world.clone.rules().commit
    mallory = " ".join((world.keys / "mallory.pub").read_text().split()[:2])
    listed = world.allowed + f'alice namespaces="promoter-approval" {mallory}\n'
    unsigned = world.origin.commit(
        {"trust/allowed_signers": listed, "trust/revoked_keys": ""}, "mallory signs as alice"
    )
    opened = ActivityEnvironment().run(
        world.forge_acts.open_lift,
        LiftHoldInput(app="demo", env="staging", commit=bad, requested_by="alice", reason="cluster fault"),
    )
    assert world.clone.rules().commit == trusted != unsigned
    assert (opened.trust.revision, opened.trust.allowed_signers.strip()) == (trusted, world.allowed.strip())


def test_on_a_hosted_forge_the_hold_and_its_lift_are_in_promoters_own_commits(on_github: World) -> None:
    """GitHub merges the revert and the lift-hold PR itself (unsigned): the hold still holds, and the lift
    that counts is promoter's signed commit the forge's merge brings (its second parent)."""
    world = on_github
    bad, revert_pr = world.promote_and_revert()
    main = git.Repo(world.origin.path)
    assert world.verify("main").returncode != 0  # GitHub's merge: not promoter's
    assert world.verify("main^2").returncode == 0  # the revert commit: promoter's, with the hold
    assert "Promoter-Held-Tree: " in main.git.log("-1", "--format=%B", "main^2")
    said = world.refusal(bad)
    assert f"is held out of staging: it was reverted there by the revert in PR #{revert_pr}" in said

    number, request = world.ask_lift(bad)
    world.forge.merge(number, f"Merge pull request #{number} by hand")  # before any approval
    assert f"demo @ {bad[:7]} is held out of staging" in world.refusal(bad)
    with pytest.raises(ApplicationError, match="lifted nothing"):
        world.merge_lift(number, request)

    number, request = world.ask_lift(bad)
    merged = world.merge_lift(number, request)
    assert world.verify(merged).returncode != 0 and world.verify(f"{merged}^2").returncode == 0
    assert world.clone.resolve(PromotionRequest(app="demo", commit=bad, to_env="staging")).commit == bad
