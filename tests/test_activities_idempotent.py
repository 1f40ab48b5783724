"""Each git and forge activity, run twice through Temporal's ActivityEnvironment, yields one branch,
one commit, one PR and one merge; permanent errors surface as non-retryable ApplicationErrors."""

from __future__ import annotations

import git
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities
from activities.repository import GitActivities
from promoter.errors import Conflict
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


def test_a_late_second_run_of_open_change_opens_nothing_once_its_pr_ended(
    origin: Origin, clone: GitClone, forge: LocalForge
) -> None:
    """A local step runs again when its workflow task times out (a starved or lost worker), and that
    run may end after the first one's result let the promotion merge or close its PR: it then pushes
    nothing and opens no second PR. Another promotion of the same commit still opens its own."""
    env = ActivityEnvironment()
    forges = ForgeActivities(forge, clone)
    repo = git.Repo(origin.path)
    for tag, end in (("1.1.0", "merge"), ("1.2.0", "close")):
        sha = origin.bump(tag=tag)
        base = repo.commit("main").hexsha
        change = PrepareInput(app="demo", commit=sha, source_env="dev", target_env="staging", base=base)
        pid = f"promote-demo-{tag}"
        req = OpenChangeInput(change=change, title="t", body=f"Promotion `{pid}` carries demo", promotion_id=pid)
        first = env.run(forges.open_change, req)
        assert first.pr is not None and first.prepared.branch is not None
        if end == "merge":
            env.run(forges.merge_pull_request, MergePullRequest(number=first.pr.number))
        else:
            env.run(forges.close_pull_request, ClosePullRequest(number=first.pr.number, comment="rejected"))
        prs, head = len(forge.list_pull_requests()), repo.commit(first.prepared.branch).hexsha
        late = env.run(forges.open_change, req)
        assert late.pr is not None and late.pr.number == first.pr.number and late.pr.state != "open"
        assert len(forge.list_pull_requests()) == prs and repo.commit(first.prepared.branch).hexsha == head
    # the closed one's commit promoted again by another promotion: its own PR opens
    again = OpenChangeInput(change=change, title="t", body="Promotion `p-2` carries demo", promotion_id="p-2")
    reopened = env.run(forges.open_change, again).pr
    assert reopened is not None and reopened.state == "open" and reopened.number != first.pr.number


def test_the_local_forge_opens_no_pr_for_a_branch_main_has_merged(
    origin: Origin, clone: GitClone, forge: LocalForge
) -> None:
    """As GitHub answers "No commits between main and …": a merged branch gets no second PR."""
    env = ActivityEnvironment()
    forges = ForgeActivities(forge, clone)
    change = PrepareInput(app="demo", commit=origin.bump(), source_env="dev", target_env="staging")
    opened = env.run(forges.open_change, OpenChangeInput(change=change, title="t", body="b"))
    assert opened.pr is not None and opened.prepared.branch is not None
    env.run(forges.merge_pull_request, MergePullRequest(number=opened.pr.number))
    with pytest.raises(Conflict, match="no commits between main and promote/demo/staging/"):
        forge.open_pull_request(opened.prepared.branch, "again", "b")
    assert len(forge.list_pull_requests()) == 1
