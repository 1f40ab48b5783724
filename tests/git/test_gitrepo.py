"""The Git adapter on real repositories: resolving a request and its bad input, preparing a stage's change
(local_files, nothing to promote, idempotency), merging into a main that moved meanwhile, and merges
asked at once pushed together."""

from __future__ import annotations

import concurrent.futures
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import git
import pytest

from promoter.errors import BadInput, Conflict, NotFound
from promoter.git import objects
from promoter.gitrepo import Entry, GitClone
from promoter.models import PrepareInput, PromotionRequest
from promoter.names import promotion_branch
from tests.support.gitops import Origin

ENV = "environments/{}/environment.yaml"


def prep(plan_commit: str, target: str = "staging", local: list[str] | None = None) -> PrepareInput:
    return PrepareInput(
        app="demo",
        commit=plan_commit,
        source_env="dev",
        target_env=target,
        local_files=local if local is not None else ["configmap.yaml"],
    )


def test_plan_orders_environments_and_resolves_the_newest_commit(origin: Origin, clone: GitClone) -> None:
    sha = origin.bump()
    origin.commit({"README.md": "unrelated\n"}, "docs")
    plan = clone.resolve(PromotionRequest(app="demo"))
    assert [e.config.name for e in plan.environments] == ["dev", "staging", "prod"]
    assert plan.commit == sha  # the newest commit that touched dev/demo, not the docs commit
    assert plan.author == "dana <dana@example.com>"
    prod = plan.environments[2]
    assert prod.config.approval.approvers == ["alice", "group:release-managers"]  # the policies expand groups


def test_plan_to_env_truncates(origin: Origin, clone: GitClone) -> None:
    plan = clone.resolve(PromotionRequest(app="demo", to_env="staging"))
    assert [e.config.name for e in plan.environments] == ["dev", "staging"]


@pytest.mark.parametrize(
    ("files", "request_", "expected"),
    [
        ({}, PromotionRequest(app="nope"), "unknown app 'nope'"),
        ({}, PromotionRequest(app="demo", to_env="qa"), "unknown environment 'qa'; environments: dev, staging, prod"),
        ({}, PromotionRequest(app="demo", commit="0123456789abcdef0123456789abcdef01234567"), "does not exist"),
        (
            {ENV.format("staging"): "name: staging\norder: [2\n"},
            PromotionRequest(app="demo"),
            "environments/staging/environment.yaml: line 2: invalid YAML",
        ),
        (
            {ENV.format("staging"): "name: staging\norder: 2\napprovals: {}\n"},
            PromotionRequest(app="demo"),
            "environments/staging/environment.yaml: approvals: unknown key",
        ),
        (
            {ENV.format("staging"): "name: staging\norder: 1\n"},
            PromotionRequest(app="demo"),
            "environments 'dev' and 'staging' both have order 1",
        ),
        (
            {ENV.format("staging"): "name: stage\norder: 2\n"},
            PromotionRequest(app="demo"),
            "but the folder is 'staging'",
        ),
        (
            {ENV.format("prod"): "name: prod\norder: 3\napproval: {required: 1}\n"},
            PromotionRequest(app="demo"),
            "approval.required is 1 but approval.approvers is empty",
        ),
        (
            {ENV.format("prod"): "name: prod\norder: 3\napproval: {timeout: soon}\n"},
            PromotionRequest(app="demo"),
            "'soon' is not a duration",
        ),
    ],
)
def test_plan_refuses_bad_input_with_one_line(
    origin: Origin, clone: GitClone, files: dict[str, str], request_: PromotionRequest, expected: str
) -> None:
    if files:
        origin.commit(files, "break it")
    before = origin.main_log()
    with pytest.raises(BadInput) as err:
        clone.resolve(request_)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert origin.main_log() == before and origin.branches() == ["main"]  # nothing pushed


def test_plan_refuses_a_commit_not_on_main(origin: Origin, clone: GitClone) -> None:
    origin.repo.git.checkout("-q", "-b", "side")
    (origin.work / "x.txt").write_text("x")
    origin.repo.git.add("x.txt")
    origin.repo.git.commit("-q", "-m", "side")
    origin.repo.git.push("-q", "origin", "side")
    with pytest.raises(BadInput, match="is not on main"):
        clone.resolve(PromotionRequest(app="demo", commit=origin.repo.head.commit.hexsha))


def test_prepare_copies_the_source_folder_except_local_files(origin: Origin, clone: GitClone) -> None:
    sha = origin.bump(tag="2.0.0")
    origin.commit({"environments/dev/demo/extra.yaml": "kind: ConfigMap\n"}, "add extra")
    sha = origin.repo.head.commit.hexsha
    result = clone.push_branch(prep(sha))
    assert result.changed and result.branch == promotion_branch("demo", "staging", sha)
    assert result.diff.added == ["extra.yaml"] and result.diff.modified == ["deployment.yaml"]
    assert result.diff.removed == []
    head = result.head
    assert head is not None
    assert "demo:2.0.0" in origin.show(head, "environments/staging/demo/deployment.yaml")
    # the target's own settings file is kept as it was, not the source's
    assert "ENVIRONMENT: staging" in origin.show(head, "environments/staging/demo/configmap.yaml")
    changed = git.Repo(origin.path).git.diff("--name-only", f"{head}~1", head).splitlines()
    assert all(p.startswith("environments/staging/demo/") for p in changed)


def test_prepare_removes_files_the_source_no_longer_has(origin: Origin, clone: GitClone) -> None:
    sha = origin.commit({"environments/dev/demo/service.yaml": None}, "drop service")
    result = clone.prepare(prep(sha))
    assert result.diff.removed == ["service.yaml"]


def test_prepare_pushes_nothing_and_push_branch_pushes_the_same_change(origin: Origin, clone: GitClone) -> None:
    sha = origin.bump()
    dry = clone.prepare(prep(sha))
    assert dry.changed and dry.head is None and dry.diff.modified == ["deployment.yaml"]
    assert origin.branches() == ["main"]  # a denied stage leaves no branch behind
    pushed = clone.push_branch(prep(sha))
    assert pushed.branch == dry.branch and pushed.diff == dry.diff and pushed.head is not None
    assert clone.push_branch(prep(sha)).head == pushed.head  # found again once it exists: not pushed twice
    assert clone.prepare(prep(sha)).head is None  # the dry run never asks the remote for the branch


def test_prepare_detects_nothing_to_promote(origin: Origin, clone: GitClone) -> None:
    sha = origin.repo.head.commit.hexsha
    result = clone.prepare(prep(sha))
    assert not result.changed and result.branch is None
    assert origin.branches() == ["main"]


def test_prepare_twice_yields_one_branch_and_one_commit(origin: Origin, clone: GitClone, tmp_path: Path) -> None:
    sha = origin.bump()
    first = clone.push_branch(prep(sha))
    origin.commit({"README.md": "main moved meanwhile\n"}, "docs")
    again = GitClone(origin.url, tmp_path / "other-cache").push_branch(prep(sha))  # another worker's clone
    assert again.head == first.head
    bare = git.Repo(origin.path)
    assert bare.git.rev_list("--count", f"main..{first.branch}") == "1"
    assert sorted(origin.branches()) == sorted(["main", first.branch])


def test_merge_rebases_onto_a_main_that_moved_and_loses_nothing(
    origin: Origin, clone: GitClone, tmp_path: Path
) -> None:
    sha = origin.bump()
    prepared = clone.push_branch(prep(sha))
    assert prepared.branch is not None
    # Someone else pushes to main between our fetch and our push: a pre-push hook in our clone
    # pushes their commit from another clone first, so our first push is refused as non-fast-forward.
    other = git.Repo.clone_from(origin.url, tmp_path / "intruder")
    (tmp_path / "intruder" / "NOTES.md").write_text("pushed by someone else\n")
    other.git.add("NOTES.md")
    other.git.execute(
        ["git", "-c", "user.name=eve", "-c", "user.email=eve@example.com", "commit", "-q", "-m", "intruder"]
    )
    hook = clone.path / ".git" / "hooks" / "pre-push"
    marker = tmp_path / "pushed-once"
    hook.write_text(
        f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; "
        f"git -C {tmp_path / 'intruder'} push -q origin main; fi\nexit 0\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    merge = clone.merge_branch(prepared.branch, "Merge promotion")
    assert marker.exists()
    log = origin.main_log()
    subjects = [line.split(" ", 1)[1] for line in log]
    assert subjects[0] == "Merge promotion" and "intruder" in subjects and "demo 1.1.0" in subjects
    assert log[0].split()[0] == merge
    # merging again (a retry after a crash) finds the merge instead of making another
    os.unlink(hook)
    assert clone.merge_branch(prepared.branch, "Merge promotion") == merge
    assert len(origin.main_log()) == len(log)


def test_merge_refuses_a_branch_that_conflicts(origin: Origin, clone: GitClone) -> None:
    sha = origin.bump(tag="3.0.0")
    prepared = clone.push_branch(prep(sha))
    assert prepared.branch is not None
    origin.bump(env="staging", tag="9.9.9")  # someone edits staging's copy directly
    with pytest.raises(Conflict) as err:
        clone.merge_branch(prepared.branch, "Merge")
    assert str(err.value) == (
        f"{prepared.branch} conflicts with main in environments/staging/demo/deployment.yaml: "
        "that folder was changed on main directly; reconcile it there, then promote again"
    )


def test_commits_written_in_process_are_the_trees_git_would_write(origin: Origin, clone: GitClone) -> None:
    """A folder replaced (a nested file, a file gone, a folder new to its parent, a folder emptied)
    gives exactly the tree git's own index would write, and objects `git fsck` accepts."""
    repo = clone.plumbing.fresh()
    main = clone.plumbing.main(repo)
    content = origin.show("main", "environments/dev/demo/deployment.yaml").encode()
    blob_sha = objects.store(repo, b"blob", content)
    cases = {
        "environments/staging/demo": {
            "deployment.yaml": Entry("100644", blob_sha),
            "sub/dir/x.yaml": Entry("100755", blob_sha),
        },
        "environments/qa/newapp": {"a.yaml": Entry("100644", blob_sha)},
        "environments/prod/demo": {},
    }
    for folder, entries in cases.items():
        commit = clone.changes.commit_folder(repo, main, folder, entries, f"replace {folder}")
        mine = repo.git.rev_parse(f"{commit}^{{tree}}")
        index = {"GIT_INDEX_FILE": str(origin.path.parent / f"index-{len(folder)}")}
        repo.git.execute(["git", "read-tree", main], env=index)
        repo.git.execute(["git", "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", folder], env=index)
        for path, e in entries.items():
            repo.git.execute(
                ["git", "update-index", "--add", "--cacheinfo", f"{e.mode},{e.sha},{folder}/{path}"], env=index
            )
        theirs = repo.git.execute(["git", "write-tree"], env=index)
        assert mine == theirs, folder
        assert repo.git.rev_parse(f"{commit}^") == main
        assert repo.git.log("-1", "--format=%an <%ae>%n%B", commit).startswith(
            f"promoter <promoter@localhost>\nreplace {folder}"
        )
    repo.git.fsck("--strict", "--no-dangling")


def test_a_branch_builds_on_the_main_its_change_was_checked_on(origin: Origin, clone: GitClone) -> None:
    """open_change pushes onto the main the policies judged, even when main moved on since."""
    sha = origin.bump()
    checked = clone.prepare(prep(sha))
    moved = origin.commit({"environments/dev/notes.txt": "main moves on\n"}, "main moves on")
    pushed = clone.push_branch(prep(sha).model_copy(update={"base": checked.base}))
    assert pushed.base == checked.base != moved
    assert git.Repo(origin.path).git.rev_parse(f"{pushed.head}^") == checked.base


@pytest.mark.parametrize("rev", ["0" * 40, "a" * 40, "-x", "HEAD@{-1}", "main:policies", "\x00", "x" * 5000])
def test_a_base_that_is_no_commit_of_the_repository_is_not_found(origin: Origin, clone: GitClone, rev: str) -> None:
    """A base commit the workflow passes back (hostile: the all-zero ID, an option, a revision
    expression, a NUL, a huge one) is never looked up as anything but a commit: `NotFound`."""
    main = clone.policy_revision()[1]
    change = PrepareInput(app="demo", commit=main, source_env="dev", target_env="staging", base=rev)
    with pytest.raises(NotFound):
        clone.prepare(change)


def test_a_branch_seeded_by_someone_else_is_never_taken_up(origin: Origin, clone: GitClone) -> None:
    """A person who can push pre-seeds the promotion branch with the right app folder plus a change of
    trust/: promoter writes its own commit over it instead of opening a PR that brings trust/ along."""
    sha = origin.bump(tag="5.0.0")
    honest = clone.push_branch(prep(sha))
    assert honest.head is not None
    repo = origin.repo
    branch = promotion_branch("demo", "staging", sha)
    repo.git.fetch("-q", "origin", branch)
    repo.git.checkout("-q", "-B", "seed", f"origin/{branch}")
    (origin.work / "trust").mkdir(exist_ok=True)
    (origin.work / "trust" / "allowed_signers").write_text("* ssh-ed25519 AAAAmallory\n")
    repo.git.add("-A")
    repo.git.commit("-qm", "seeded")
    repo.git.push("-q", "-f", "origin", f"seed:{branch}")
    seeded = repo.head.commit.hexsha
    repo.git.checkout("-q", "main")
    again = clone.push_branch(prep(sha))
    assert again.head not in (None, seeded)
    assert git.Repo(origin.path).git.rev_parse(branch) == again.head
    changed = git.Repo(origin.path).git.diff("--name-only", f"{again.head}~1", again.head).splitlines()
    assert all(p.startswith("environments/staging/demo/") for p in changed)


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_merges_asked_at_once_are_pushed_together_each_once(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """A burst of approved gates: while one merge's push is held at the origin, eleven more are asked
    at once. Each gets its own merge commit (its head the second parent), every one is on main once,
    the eleven went to the origin in one push, and the one that conflicts fails alone."""
    apps = tuple(f"app{i}" for i in range(12))
    origin = origin_factory(apps=apps)
    clone = GitClone(origin.url, tmp_path / "cache")
    branches = {}
    for app in apps:
        sha = origin.bump(app=app, tag="2.0.0")
        prepared = clone.push_branch(prep(sha, target="staging").model_copy(update={"app": app}))
        assert prepared.branch is not None and prepared.head is not None
        branches[app] = (prepared.branch, prepared.head)
    origin.bump(app="app11", env="staging", tag="9.9.9")  # app11's staging folder changed on main directly
    pushes, release = tmp_path / "pushes", tmp_path / "release"
    hook = origin.path / "hooks" / "pre-receive"  # the origin counts the pushes; the first waits for the rest
    hook.write_text(
        f"#!/bin/sh\necho x >> {pushes}\nn=0\n"
        f'while [ ! -e {release} ] && [ "$n" -lt 300 ]; do sleep 0.1; n=$((n+1)); done\nexit 0\n'
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)

    def merge(app: str) -> str | Exception:
        branch, head = branches[app]
        try:
            return clone.merge_branch(branch, f"Merge {branch}", head)
        except Exception as e:  # noqa: BLE001 - the conflicting one's answer
            return e

    with concurrent.futures.ThreadPoolExecutor(len(apps)) as pool:
        futures = {apps[0]: pool.submit(merge, apps[0])}
        until(pushes.exists, "the first merge's push to reach the origin")
        futures |= {app: pool.submit(merge, app) for app in apps[1:]}
        until(lambda: len(clone.writing._waiting) == len(apps) - 1, "the other merges to queue behind it")
        release.touch()
        results = {app: f.result(timeout=60) for app, f in futures.items()}

    assert isinstance(results["app11"], Conflict), results["app11"]
    bare = git.Repo(origin.path)
    first_parents = bare.git.rev_list("--first-parent", "--parents", "main").splitlines()
    for app in apps[:-1]:
        merge_commit = results[app]
        assert isinstance(merge_commit, str), (app, merge_commit)
        [line] = [line for line in first_parents if line.split()[0] == merge_commit]
        assert line.split()[2] == branches[app][1]  # its own head, merged once
        assert sum(branches[app][1] in line.split()[2:] for line in first_parents) == 1
    assert len(pushes.read_text().split()) == 2, pushes.read_text()  # the first merge's, then the other ten's


def test_a_fetch_keeps_a_commit_graph_with_changed_paths_in_the_clone(origin: Origin, clone: GitClone) -> None:
    """After a fetch the clone's history is written to a commit-graph with changed-path Bloom filters
    (in the background), a layer more as main grows, so walks of a long history read it."""
    from promoter.stack import wait_until

    plumbing = clone.plumbing
    chain = plumbing.path / ".git" / "objects" / "info" / "commit-graphs" / "commit-graph-chain"

    def layers() -> list[str]:
        written = chain.is_file() and not (chain.parent / "commit-graph-chain.lock").exists()
        return chain.read_text().split() if written else []

    plumbing.fresh()
    wait_until(layers, 30, "the clone's commit-graph")
    first = layers()
    origin.commit({"environments/dev/demo/note.txt": "more\n"}, "a commit after the graph")
    plumbing._maintained = None  # git's housekeeping runs at most once a minute: due now
    plumbing.fresh()
    wait_until(lambda: layers() not in ([], first), 30, "a layer for the new commit")
    newest = (chain.parent / f"graph-{layers()[-1]}.graph").read_bytes()
    assert b"BIDX" in newest and b"BDAT" in newest  # the changed-path Bloom filters' chunks
    git.Repo(plumbing.path).git.execute(["git", "commit-graph", "verify"])  # whole (raises when not)
