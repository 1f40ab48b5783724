"""The local forge: PRs as real branches plus SQLite records; open is idempotent by head branch,
merge happens once (a retry after a crash finds the merge on main), close comments once."""

from __future__ import annotations

import sqlite3

import pytest

from promoter.errors import BadInput, Conflict, NotFound
from promoter.forges import make_forge
from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from tests.support.gitops import Origin, branch_for


def test_open_is_idempotent_by_head_branch(origin: Origin, clone: GitClone, forge: LocalForge) -> None:
    branch = branch_for(origin, clone)
    first = forge.open_pull_request(branch, "title", "body")
    again = forge.open_pull_request(branch, "title", "body")
    assert first.number == again.number and first.state == "open"
    assert forge.find_pull_request(branch) == first
    assert len(forge.list_pull_requests()) == 1
    assert first.url.endswith(f"/pulls/{first.number}")


def test_open_requires_the_branch(forge: LocalForge) -> None:
    with pytest.raises(NotFound, match="branch promote/x does not exist"):
        forge.open_pull_request("promote/x", "t", "b")


def test_merge_once_even_after_a_crash_between_push_and_record(
    origin: Origin, clone: GitClone, forge: LocalForge
) -> None:
    branch = branch_for(origin, clone)
    pr = forge.open_pull_request(branch, "title", "body")
    merged = forge.merge(pr.number)
    assert merged.state == "merged" and merged.merge_commit == origin.main_log()[0].split()[0]
    commits = len(origin.main_log())
    # a crash after the push but before the record: the record says open, main has the merge
    with sqlite3.connect(forge.db_path) as db:
        db.execute("UPDATE pulls SET state = 'open', merge_commit = NULL WHERE number = ?", (pr.number,))
    again = forge.merge(pr.number)
    assert again.merge_commit == merged.merge_commit
    assert len(origin.main_log()) == commits


def test_close_comments_once_and_a_closed_pr_cannot_merge(origin: Origin, clone: GitClone, forge: LocalForge) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone), "title", "body")
    forge.close(pr.number, "expired")
    forge.close(pr.number, "expired")
    assert forge.get_pull_request(pr.number).state == "closed"
    assert forge.comments(pr.number) == ["expired"]
    with pytest.raises(Conflict, match="is closed"):
        forge.merge(pr.number)
    # a closed PR's branch can be opened again as a new PR
    assert forge.open_pull_request(pr.head, "title", "body").number != pr.number


def test_reviews_are_recorded_against_the_head(origin: Origin, clone: GitClone, forge: LocalForge) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone), "title", "body")
    forge.add_review(pr.number, "alice", "approved", "lgtm")
    [review] = forge.reviews(pr.number)
    assert (review.author, review.state, review.commit) == ("alice", "approved", pr.head_sha)


def test_factory_table(clone: GitClone, origin: Origin) -> None:
    assert isinstance(make_forge("local", repo=clone, db_path=origin.path.parent / "f.sqlite"), LocalForge)
    with pytest.raises(Exception, match="unknown forge 'bitbucket'; choose one of: forgejo, gitea, github, gitlab"):
        make_forge("bitbucket")


@pytest.mark.parametrize("method", ["squash", "rebase"])
def test_a_method_it_cannot_do_is_refused_in_one_line_and_nothing_merges(
    origin: Origin, clone: GitClone, forge: LocalForge, method: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone), "title", "body")
    commits = origin.main_log()
    with pytest.raises(BadInput, match=f"merges only with a merge commit, not {method}: set merge.method") as e:
        forge.merge(pr.number, method=method)
    assert "\n" not in str(e.value)
    assert origin.main_log() == commits and forge.get_pull_request(pr.number).state == "open"
    assert forge.merge(pr.number, method="merge").state == "merged"


def test_a_prs_head_is_read_from_loose_and_packed_refs_as_they_change(
    origin: Origin, clone: GitClone, forge: LocalForge
) -> None:
    """A waiting gate reads its PR's head every poll: from the origin's ref file, else its packed
    refs (read again only when `packed-refs` changes), following every push."""
    import subprocess

    branch = branch_for(origin, clone)
    pr = forge.open_pull_request(branch, "title", "body")
    bare = ["git", "-C", str(origin.path)]

    def head() -> str:
        return subprocess.run(
            [*bare, "rev-parse", f"refs/heads/{branch}"], capture_output=True, text=True
        ).stdout.strip()

    assert forge.get_pull_request(pr.number).head_sha == head()  # a loose ref
    subprocess.run([*bare, "pack-refs", "--all", "--prune"], check=True)
    assert not (origin.path / "refs" / "heads" / branch).exists()
    assert forge.get_pull_request(pr.number).head_sha == head()  # a packed one
    packed_before = head()
    subprocess.run([*bare, "update-ref", f"refs/heads/{branch}", f"refs/heads/{branch}~1"], check=True)
    moved = forge.get_pull_request(pr.number).head_sha  # loose again, over the packed one
    assert moved == head() != packed_before
    subprocess.run([*bare, "pack-refs", "--all", "--prune"], check=True)
    assert forge.get_pull_request(pr.number).head_sha == moved  # the packed refs, read again


def test_list_open_reads_only_the_family_it_is_asked_for(forge: LocalForge, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a PR looks for its family's stale ones (`promote/<app>/<env>/`): with a thousand gates
    waiting, reading every open PR at each opening was most of a burst's work. Only the family's rows
    are read, and exactly those: not a closed one, not a name that merely shares the characters."""
    forge.list_pull_requests()  # the schema
    heads = [f"promote/app-{i}/prod/c{i}" for i in range(300)] + [
        "promote/demo/prod/aaa",
        "promote/demo/prod/zzz",
        "promote/demo/prodx/bbb",  # another environment whose name starts with "prod"
        "promote/demo/pro",
        "promote/demo/prod",  # the prefix without its slash
        "promote/demo/staging/ccc",
        "promote/démo/prod/ddd",  # not ASCII
    ]
    with sqlite3.connect(forge.db_path) as db:
        for state, head in [("open", h) for h in heads] + [("closed", "promote/demo/prod/closed")]:
            db.execute(
                "INSERT INTO pulls (title, body, head, base, state, created_at, updated_at)"
                " VALUES (?, '', ?, 'main', ?, '', '')",
                (head, head, state),
            )
    made: list[str] = []
    real = LocalForge._pr

    def counted(self: LocalForge, row: sqlite3.Row) -> object:
        made.append(row["head"])
        return real(self, row)

    monkeypatch.setattr(LocalForge, "_pr", counted)
    assert [p.head for p in forge.list_open("promote/demo/prod/")] == ["promote/demo/prod/aaa", "promote/demo/prod/zzz"]
    assert made == ["promote/demo/prod/aaa", "promote/demo/prod/zzz"]  # 2 rows read of 307 open
    assert [p.head for p in forge.list_open("promote/démo/")] == ["promote/démo/prod/ddd"]
    assert [p.head for p in forge.list_open("promote/demo/pro")] == [
        "promote/demo/prod/aaa",
        "promote/demo/prod/zzz",
        "promote/demo/prodx/bbb",
        "promote/demo/pro",
        "promote/demo/prod",
    ]
    assert len(forge.list_open("")) == 307
