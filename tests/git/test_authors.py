"""Everyone who touched a change is its author: the promoted range's authors, committers and signers
(`GitClone.authors`), read from real repositories, the forge's logins for its commits (the GitHub
stand-in), and the policy activity refusing a prod approval by one of them through the embedded
engine, as the worker asks it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.policy import PolicyActivities
from promoter.errors import TemporaryError
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from promoter.gitrepo import GitClone
from promoter.models import Approval, EnvironmentConfig, HistoryEntry, PolicyCheckInput, PrepareInput
from promoter.policy.embedded import EmbeddedEngine
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import Origin

DEMO = "environments/dev/demo/deployment.yaml"
ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "prod", "order": 2, "approval": {"required": 1, "approvers": ["alice", "bob", "sam"]}},
]


def commit_as(
    origin: Origin,
    committer: str,
    path: str = DEMO,
    author: str | None = None,
    sign_with: Path | None = None,
    text: str | None = None,
) -> str:
    """A commit by `committer` (and `--author`, when given; signed with an SSH key, when given),
    pushed to main as a person would."""
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    file = origin.work / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text if text is not None else (file.read_text() if file.exists() else "") + f"# {committer}\n")
    repo.git.add(path)
    args = ["git", "-c", f"user.name={committer}", "-c", f"user.email={committer}@example.com"]
    if sign_with is not None:
        args += ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}.pub"]
    args += ["commit", "-q", "-m", f"{committer}'s change"]
    args += [f"--author={author}"] if author else []
    args += ["-S"] if sign_with is not None else []
    repo.git.execute(args)
    repo.git.push("--quiet", "origin", "main")
    return repo.head.commit.hexsha


def promote(clone: GitClone, commit: str, env: str = "prod", trailer: bool = True) -> str:
    """Promote `commit` into `env` as promoter records it: its branch commit (`Promoted-Commit`)
    merged into main (`Promoter-Promotion`); without the trailer, as a person merging the PR by hand."""
    prepared = clone.push_branch(PrepareInput(app="demo", commit=commit, source_env="dev", target_env=env))
    assert prepared.branch is not None
    message = f"Merge pull request #1 from {prepared.branch}\n\n"
    message += "Promoter-Promotion: promote-demo\n" if trailer else ""
    return clone.merge_branch(prepared.branch, message)


def people(clone: GitClone, commit: str, env: str = "prod", apps: tuple[str, ...] = ("demo",)) -> set[str]:
    found = clone.authors(commit, env, list(apps))
    assert found.unknown == ""
    return {p for t in found.touches for p in (t.author, t.committer, t.signer) if p}


@pytest.fixture
def origin(origin_factory: Callable[..., Origin]) -> Origin:
    return origin_factory(ENVS, apps=("demo", "demo-api"))


def test_a_forged_author_leaves_its_committer_an_author(origin: Origin, clone: GitClone) -> None:
    sha = commit_as(origin, "bob", author="alice <alice@example.com>")
    found = clone.authors(sha, "prod", ["demo"])
    assert found.since == {} and found.unknown == ""  # never promoted to prod: all history up to the commit
    forged = next(t for t in found.touches if t.commit == sha)
    assert (forged.author, forged.committer) == ("alice <alice@example.com>", "bob <bob@example.com>")
    assert forged.signer == ""
    # the seed is promoter's own commit: part of the range like any other
    assert people(clone, sha) == {"alice <alice@example.com>", "bob <bob@example.com>", "promoter <promoter@localhost>"}


def test_a_later_commit_does_not_launder_an_earlier_one(origin: Origin, clone: GitClone) -> None:
    commit_as(origin, "carol")
    sha = commit_as(origin, "dave")
    assert {"carol <carol@example.com>", "dave <dave@example.com>"} <= people(clone, sha)


def test_commits_outside_the_apps_folders_do_not_count(origin: Origin, clone: GitClone) -> None:
    commit_as(origin, "erin", path="README.md")
    commit_as(origin, "erin", path="environments/dev/demo-api/deployment.yaml")  # another app (a longer name)
    commit_as(origin, "erin", path="environments/dev/environment.yaml", text="name: dev\norder: 1\n")
    commit_as(origin, "fay", path="environments/prod/demo/configmap.yaml")  # the app's folder in another env
    sha = commit_as(origin, "gus")
    assert people(clone, sha) == {"promoter <promoter@localhost>", "fay <fay@example.com>", "gus <gus@example.com>"}
    assert "erin <erin@example.com>" in people(clone, sha, apps=("demo", "demo-api"))  # a release set's folders


def test_commits_before_the_deployed_commit_do_not_count(origin: Origin, clone: GitClone) -> None:
    first = commit_as(origin, "hal")
    promote(clone, first)
    later = commit_as(origin, "ida")
    found = clone.authors(later, "prod", ["demo"])
    assert found.since == {"demo": first}
    # promoter's branch commit and merge of the first promotion touched prod's folder after it
    assert people(clone, later) == {"ida <ida@example.com>", "promoter <promoter@localhost>"}
    assert "hal <hal@example.com>" in people(clone, later, env="dev")  # never promoted there: all history
    # a PR merged by hand (no Promoter-Promotion) passed no gate: it never narrows the range
    promote(clone, later, trailer=False)
    newest = commit_as(origin, "jon")
    assert clone.authors(newest, "prod", ["demo"]).since == {"demo": first}
    assert "ida <ida@example.com>" in people(clone, newest)


def test_an_ssh_signed_commit_names_its_signer(origin: Origin, clone: GitClone, tmp_path: Path) -> None:
    known, unknown = tmp_path / "kim", tmp_path / "stranger"
    for key in (known, unknown):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)], check=True)
    public = known.with_suffix(".pub").read_text().split()
    commit_as(origin, "ops", path="trust/allowed_signers", text=f"kim@example.com {public[0]} {public[1]}\n")
    signed = commit_as(origin, "lee", sign_with=known)
    stranger = commit_as(origin, "lee", sign_with=unknown)
    touches = {t.commit: t for t in clone.authors(stranger, "prod", ["demo"]).touches}
    assert touches[signed].signer == "kim@example.com"  # the principal trust/allowed_signers names
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{unknown}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert touches[stranger].signer == fingerprint  # no principal known: the key itself
    assert all(t.signer == "" for c, t in touches.items() if c not in (signed, stranger))


def test_a_range_longer_than_the_limit_is_unknown_not_shortened(origin: Origin, clone: GitClone) -> None:
    commit_as(origin, "max")
    sha = commit_as(origin, "ned")
    found = clone.authors(sha, "prod", ["demo"], limit=2)  # the seed, max and ned: three
    assert found.touches == []
    assert found.unknown == "the promoted range holds more than 2 commits that touched its folders"


def check(commit: str, approver: str, members: list[str] | None = None) -> PolicyCheckInput:
    """The approval check the gate asks for, as the workflow builds it."""
    now = datetime.now(UTC)
    return PolicyCheckInput(
        promotion_id="promote-demo",
        app="demo" if not members else "shop",
        members=members or [],
        commit=commit,
        author="alice <alice@example.com>",  # what resolving reads: the promoted commit's author alone
        source_env="dev",
        target_env="prod",
        started_at=now,
        environment=EnvironmentConfig.model_validate(ENVS[1]),
        environments=["dev", "prod"],
        history=[HistoryEntry(env="dev", state="healthy", healthy_since=now, soak_seconds=0)],
        phase="approval",
        approvals=[Approval(approver=approver, at=now, via="cli")],
    )


def test_github_logins_of_the_range_are_authors(origin: Origin, clone: GitClone) -> None:
    commit_as(origin, "bob")
    sha = commit_as(origin, "sam")
    github = GitHubStandIn(
        str(origin.path), tokens={"tok": "promoter-bot"}, accounts={"bob@example.com": "bobby42"}
    ).start()
    try:
        forge = GitHubForge("acme/gitops", "tok", api_url=github.url)
        policy = PolicyActivities(clone, EmbeddedEngine(), forge=forge)
        found = policy.authors(check(sha, "bobby42"))
        assert "bobby42" in found["authors"] and found["authorship"]["bobby42"].startswith("authored or committed ")
        asked = len(github.requests)
        assert policy.authors(check(sha, "bobby42")) == found and len(github.requests) == asked  # cached by commit
        verdict = ActivityEnvironment().run(policy.check_approval, check(sha, "bobby42"))
        assert not verdict.allowed and "bobby42 authored or committed " in verdict.reason
        # a forge that cannot answer is an error (retried, then refused), never an empty list of logins
        newer = commit_as(origin, "ned")
        github.fail_next(502, count=5, path=f"/commits/{newer}")
        flaky = GitHubForge(
            "acme/gitops", "tok", client=ApiClient("GitHub", github.url, "Bearer tok", sleep=lambda _: None)
        )
        with pytest.raises(TemporaryError, match="502"):
            PolicyActivities(clone, EmbeddedEngine(), forge=flaky).authors(check(newer, "sam"))
    finally:
        github.stop()


def test_the_policy_activity_refuses_the_committer_of_a_forged_commit_in_prod(origin: Origin, clone: GitClone) -> None:
    sha = commit_as(origin, "bob", author="alice <alice@example.com>")
    policy = PolicyActivities(clone, EmbeddedEngine())
    verdict = ActivityEnvironment().run(policy.check_approval, check(sha, "bob"))
    assert not verdict.allowed
    assert verdict.reason == f"bob committed {sha[:7]} in the promoted range and may not approve it for prod"
    alice = ActivityEnvironment().run(policy.check_approval, check(sha, "alice"))
    assert alice.reason == f"alice wrote commit {sha[:7]} and may not approve it for prod"  # as before
    assert ActivityEnvironment().run(policy.check_approval, check(sha, "sam")).allowed
    # a release set's range is every member's folders: tom's commit to demo-api makes him its author
    api = commit_as(origin, "tom", path="environments/dev/demo-api/deployment.yaml")
    members = ActivityEnvironment().run(policy.check_approval, check(api, "tom", ["demo", "demo-api"]))
    assert f"tom authored {api[:7]} in the promoted range and may not approve it for prod" in members.reason
    alone = ActivityEnvironment().run(policy.check_approval, check(api, "tom"))
    assert alone.reason == "tom may not approve prod; its approvers are: alice, bob, sam"  # not demo's author
    # the merge-time check: bob's approval does not count toward the quorum
    merge = check(sha, "bob").model_copy(update={"phase": "merge", "render_objects": False})
    decision = ActivityEnvironment().run(policy.check_policy, merge)
    assert "prod needs 1 more approval(s) from sam" in [v.message for v in decision.deny]
