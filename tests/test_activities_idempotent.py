"""Each git and forge activity, run twice through Temporal's ActivityEnvironment, yields one branch,
one commit, one PR and one merge; permanent errors surface as non-retryable ApplicationErrors."""

from __future__ import annotations

import git
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities
from activities.repository import GitActivities
from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from promoter.models import (
    ClosePullRequest,
    MergePullRequest,
    OpenChangeInput,
    PrepareInput,
    PromotionRequest,
)
from tests.support.gitops import Origin


def test_each_activity_twice_gives_one_of_everything(origin: Origin, clone: GitClone, forge: LocalForge) -> None:
    env = ActivityEnvironment()
    gits, forges = GitActivities(clone), ForgeActivities(forge, clone)
    sha = origin.bump()
    plans = [env.run(gits.resolve, PromotionRequest(app="demo")) for _ in range(2)]
    assert plans[0] == plans[1]
    req = PrepareInput(app="demo", commit=sha, source_env="dev", target_env="staging")
    dry = [clone.prepare(req) for _ in range(2)]
    assert dry[0] == dry[1] and origin.branches() == ["main"]
    open_req = OpenChangeInput(change=req, title="t", body="b")
    first, second = (env.run(forges.open_change, open_req) for _ in range(2))
    assert first == second and first.pr is not None and first.prepared.branch is not None
    assert sorted(origin.branches()) == ["main", first.prepared.branch]
    assert git.Repo(origin.path).git.rev_list("--count", f"main..{first.prepared.branch}") == "1"
    pr1 = first.pr
    assert len(forge.list_pull_requests()) == 1

    before = len(origin.main_log())
    m1, m2 = (env.run(forges.merge_pull_request, MergePullRequest(number=pr1.number)) for _ in range(2))
    assert m1 == m2 and len(origin.main_log()) == before + 2  # the branch commit and one merge

    c1, c2 = (env.run(forges.close_pull_request, ClosePullRequest(number=pr1.number, comment="x")) for _ in range(2))
    assert c1.state == c2.state == "merged"  # closing a merged PR changes nothing
    assert forge.comments(pr1.number) == []


def test_permanent_errors_do_not_retry(origin: Origin, clone: GitClone) -> None:
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(GitActivities(clone).resolve, PromotionRequest(app="nope"))
    assert err.value.non_retryable and err.value.type == "BadInput"
    assert "unknown app 'nope'" in err.value.message


def test_opening_a_newer_promotion_pr_closes_the_stale_one_with_a_pointer(
    origin: Origin, clone: GitClone, forge: LocalForge
) -> None:
    """A PR left open by an earlier promotion (e.g. terminated) of the same app and environment is
    closed when a newer one opens; other apps' and environments' PRs are left alone."""
    env = ActivityEnvironment()
    forges = ForgeActivities(forge, clone)
    opened = {}
    for tag, app_env in (("1.1.0", "staging"), ("1.2.0", "prod"), ("1.3.0", "staging")):
        sha = origin.bump(tag=tag)
        change = PrepareInput(app="demo", commit=sha, source_env="dev", target_env=app_env)
        pr = env.run(forges.open_change, OpenChangeInput(change=change, title=f"t {tag}", body="b")).pr
        assert pr is not None
        opened[tag] = pr
    stale, other_env, newest = (forge.get_pull_request(opened[t].number) for t in ("1.1.0", "1.2.0", "1.3.0"))
    assert stale.state == "closed" and other_env.state == "open" and newest.state == "open"
    assert forge.comments(stale.number) == [
        f"Superseded by #{newest.number} ({newest.url}), which promotes a newer commit: t 1.3.0."
    ]
