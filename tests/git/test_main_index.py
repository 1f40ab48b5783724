"""The index of main's records (promoter.git.index, issue 32): held versions, lifts and reverts are
found behind thousands of unrelated commits by an update from the last indexed commit (not a rebuild);
after main is force-pushed the index is rebuilt (a hold that vanished with the rewrite no longer
holds, one added after does); a corrupt or truncated index is rebuilt; two processes updating one
clone's index at once leave a whole, correct one. Real git throughout; the commits are written with
`git fast-import`, as a busy monorepo's pushes would bring them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest

from promoter import holds
from promoter.errors import BadInput
from promoter.git import index, indexdata
from promoter.gitrepo import GitClone
from promoter.models import PromotionRequest
from tests.support.gitops import ROOT, Origin

UNRELATED = 3000
HOLD_REASON = "ProgressDeadlineExceeded"


def append(origin: Origin, n: int, messages: dict[int, str] | None = None, base: str = "main") -> str:
    """`n` commits on top of `base`, each changing a file outside every app's folder (the i-th carries
    `messages[i]` as its message, and changes prod's demo when it does), pushed as main; main's commit."""
    lines = []
    for i in range(n):
        message = (messages or {}).get(i, f"unrelated {i}")
        path = "environments/prod/demo/configmap.yaml" if messages and i in messages else f"notes/{i % 50}.txt"
        content = f"n: {i} {time.time_ns()}\n".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(b"committer dana <dana@example.com> %d +0000\n" % (1_700_000_000 + i))
        lines.append(b"data %d\n%s\n" % (len(message.encode()), message.encode()))
        if i == 0:
            lines.append(b"from %s\n" % git.Repo(origin.path).git.rev_parse(base).encode())
        lines.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(content), content))
    subprocess.run(["git", "fast-import", "--quiet", "--force"], cwd=origin.path, input=b"".join(lines), check=True)
    return git.Repo(origin.path).git.rev_parse("main")


def hold(commit: str) -> str:
    return "revert(demo): it broke\n\n" + holds.trailers("demo", "prod", commit, HOLD_REASON, "https://forge/pulls/9")


def lift(commit: str) -> str:
    return "lift-hold(demo)\n\n" + holds.lift_trailers("demo", "prod", commit, "alice", "the cluster was at fault")


def refused(clone: GitClone, commit: str) -> str:
    try:
        clone.resolve(PromotionRequest(app="demo", commit=commit, to_env="prod"))
    except BadInput as e:
        return str(e)
    return ""


def stored(clone: GitClone) -> index.Data:
    repo = clone.plumbing.fresh()
    return index.of(clone.plumbing).at(repo, clone.plumbing.main(repo)).data


def test_holds_and_lifts_behind_thousands_of_commits_are_found_by_an_update(origin: Origin, clone: GitClone) -> None:
    bumped = origin.bump(tag="1.2.0")
    assert refused(clone, bumped) == ""  # indexed here, before the pushes
    before = stored(clone)
    append(origin, UNRELATED, {5: hold(bumped), 9: lift("c" * 40)})
    assert HOLD_REASON in refused(clone, bumped)
    after = stored(clone)
    assert after.commits[: len(before.commits)] == before.commits  # taken on from the last indexed commit
    assert len(after.commits) == len(before.commits) + UNRELATED
    repo = clone.plumbing.open()
    view = index.of(clone.plumbing).at(repo, clone.plumbing.main(repo))
    assert [r["message"] for r in view.records(index.LIFT_LINE)] == [lift("c" * 40).strip()]
    held = [r for r in view.records(index.HELD_LINE) if HOLD_REASON in r["message"]]
    assert [view.rank(r["sha"]) for r in held] == [UNRELATED - 6]  # where main took it in
    # the same index cut at an older main (another thread fetched on meanwhile) does not see the hold
    old = view.data.at(before.main)
    assert old is not None and old.records(index.HELD_LINE) == []


def test_a_revert_merge_behind_thousands_of_commits_is_in_the_history(origin: Origin, clone: GitClone) -> None:
    assert clone.history("demo") == []
    person = origin.repo
    person.git.pull("--quiet", "--rebase", "origin", "main")
    person.git.checkout("-q", "-b", "revert/demo/prod/abcdef0")
    (origin.work / "environments/prod/demo/configmap.yaml").write_text("reverted: true\n")
    person.git.commit("-q", "-am", hold("a" * 40))
    person.git.checkout("-q", "main")
    person.git.merge(
        "--no-ff", "-q", "revert/demo/prod/abcdef0", "-m", "Merge pull request #9 from revert/demo/prod/abcdef0"
    )
    person.git.push("--quiet", "origin", "main")
    append(origin, UNRELATED)
    events = clone.history("demo")
    assert [(e.kind, e.env, e.commit, e.reason) for e in events] == [("reverted", "prod", "a" * 40, HOLD_REASON)]


def test_after_a_force_push_the_index_is_rebuilt(origin: Origin, clone: GitClone) -> None:
    bumped = origin.bump(tag="1.3.0")
    base = git.Repo(origin.path).git.rev_parse("main")
    append(origin, 2000, {100: hold(bumped)})
    assert HOLD_REASON in refused(clone, bumped)
    first = stored(clone)
    append(origin, 50, base=base)  # main rewritten from before the hold: the hold is gone
    assert refused(clone, bumped) == ""
    rebuilt = stored(clone)
    assert first.main not in rebuilt.number  # rebuilt from main as it is, not taken on from the old one
    append(origin, 10, {3: hold(bumped)})  # a hold added after the rewrite holds
    assert HOLD_REASON in refused(clone, bumped)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "edited"])
def test_a_damaged_index_is_rebuilt(origin: Origin, clone: GitClone, damage: str) -> None:
    bumped = origin.bump(tag="1.4.0")
    append(origin, 500, {7: hold(bumped)})
    assert HOLD_REASON in refused(clone, bumped)
    path = clone.plumbing.path / ".git" / index.FILE
    text = path.read_bytes()
    damaged = {
        "truncated": text[: len(text) // 2],
        "garbage": b"\0\1 not json",
        "edited": text.replace(b"Promoter-Held-App: demo", b"Promoter-Held-App: dema"),  # its digest no longer holds
    }[damage]
    path.write_bytes(damaged)
    for cached in index._INDEXES.values():  # a fresh process: nothing kept in memory
        cached.forget()
    assert HOLD_REASON in refused(clone, bumped)
    assert path.read_bytes() == text  # rebuilt whole


def meaning(data: index.Data) -> dict[str, object]:
    """What an index says, by commit (the numbers it gives commits depend on how it was built)."""
    sha = data.commits.__getitem__
    return {
        "chain": [sha(n) for n in data.chain],
        "first": {k: sorted(map(sha, ns)) for k, ns in data.first.items()},
        "later": {k: sorted(map(sha, ns)) for k, ns in data.later.items()},
        "records": sorted((sha(r[0]), r[1], r[2], sha(data.chain[r[3]]), r[4]) for r in data.records),
        "merges": [(sha(data.chain[m[0]]), *m[1:]) for m in data.merges],
    }


UPDATE = """
import sys
from pathlib import Path
from promoter.git import index
from promoter.gitrepo import GitClone
clone = GitClone(sys.argv[1], Path(sys.argv[2]))
repo = clone.plumbing.fresh()
view = index.of(clone.plumbing).at(repo, clone.plumbing.main(repo))
print(len(view.records(index.HELD_LINE)))
"""


def test_two_processes_updating_one_index_at_once_leave_it_whole(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    clone = GitClone(origin.url, cache)
    bumped = origin.bump(tag="1.5.0")
    assert refused(clone, bumped) == ""
    append(origin, 2000, {1500: hold(bumped)})
    trace = tmp_path / "git-trace"
    env = {**os.environ, "GIT_TRACE": str(trace)}  # every git run of both processes, to count the updates
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", UPDATE, origin.url, str(cache)], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert outs == ["1", "1"]
    updates = [line for line in trace.read_text().splitlines() if "git log -z --no-renames" in line]
    assert len(updates) == 1  # one updated it under the lock; the other took its update as it was
    for cached in index._INDEXES.values():
        cached.forget()
    shared = stored(clone)
    fresh = GitClone(origin.url, tmp_path / "fresh-cache")
    assert HOLD_REASON in refused(fresh, bumped)
    assert meaning(shared) == meaning(stored(fresh))  # the same as one built alone


def test_a_hold_whose_message_git_cannot_decode_is_stored_and_found(origin: Origin, clone: GitClone) -> None:
    """A record whose message holds bytes that are not UTF-8 (git gives them as surrogate escapes,
    which orjson refuses) is stored in the index (by json) and read back: the index keeps answering."""
    bumped = origin.bump(tag="1.3.0")
    assert refused(clone, bumped) == ""  # indexed
    lines = [
        b"commit refs/heads/main\ncommitter dana <dana@example.com> 1700000000 +0000\n",
        b"from %s\n" % git.Repo(origin.path).git.rev_parse("main").encode(),
    ]
    message = hold(bumped).encode().replace(b"it broke", b"it broke \xff\xfe")
    lines.insert(1, b"data %d\n%s\n" % (len(message), message))
    lines.append(b"M 100644 inline notes/x.txt\ndata 2\nx\n")
    subprocess.run(["git", "fast-import", "--quiet", "--force"], cwd=origin.path, input=b"".join(lines), check=True)
    assert HOLD_REASON in refused(clone, bumped)
    data = stored(clone)  # saved: read back from the file by a new process's reader
    index._INDEXES.clear()
    again = stored(clone)
    assert again.main == data.main and any("\udcff" in r[2] for r in again.records)


def test_a_rule_file_a_new_commit_adds_is_among_the_rule_keys_of_the_grown_index(
    origin: Origin, clone: GitClone
) -> None:
    """The rule files' keys are found once per index and grown with it: a new environment's
    environment.yaml, pushed after the index was made, is one of them, as a fresh scan finds them, and
    they are not stored (a loaded index finds them again)."""
    before = stored(clone)
    assert "environments/qa/environment.yaml" not in before.rule_keys
    text = b"name: qa\n"
    commit = b"commit refs/heads/main\ncommitter dana <dana@example.com> 1700000000 +0000\ndata 3\nqa\n"
    commit += b"from %s\n" % before.main.encode()
    commit += b"M 100644 inline environments/qa/environment.yaml\ndata %d\n%s\n" % (len(text), text)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=origin.path, input=commit, check=True)
    append(origin, 3)
    after = stored(clone)
    assert after.commits[: len(before.commits)] == before.commits  # grown, not rebuilt
    assert "environments/qa/environment.yaml" in after.rule_keys
    assert after.rule_keys == [k for k in after.first if indexdata.is_rule_key(k)]
    assert b"rule_keys" not in index.of(clone.plumbing).path.read_bytes()


def test_a_few_new_commits_are_kept_in_memory_and_a_fresh_process_grows_the_written_index(
    origin: Origin, clone: GitClone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monorepo's index is megabytes and main moves at every merge: it is written again only after
    `SAVE_AFTER` commits (or `SAVE_EVERY_S`), and what was not written yet is neither lost to this
    process nor to a fresh one, which grows the written index by the commits since."""
    monkeypatch.setattr(index, "SAVE_EVERY_S", 3600.0)  # this test's own pace never writes by the clock
    bumped = origin.bump(tag="1.6.0")
    assert refused(clone, bumped) == ""  # indexed and written
    path = clone.plumbing.path / ".git" / index.FILE
    written = path.read_bytes()
    append(origin, 3, {1: hold(bumped)})
    assert HOLD_REASON in refused(clone, bumped)  # this process: from the index it grew
    assert path.read_bytes() == written  # not written again for three commits
    for cached in index._INDEXES.values():  # a fresh process: the written index, grown by the three
        cached.forget()
    assert HOLD_REASON in refused(clone, bumped)
    append(origin, index.SAVE_AFTER)
    assert HOLD_REASON in refused(clone, bumped)
    repo = clone.plumbing.fresh()
    assert f'"main":"{clone.plumbing.main(repo)}"'.encode() in path.read_bytes()  # written: SAVE_AFTER commits


def test_after_main_is_rewritten_the_index_another_process_wrote_is_grown_not_an_abandoned_one(
    origin: Origin, clone: GitClone, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """This process's index ran ahead on a line main no longer has (force-pushed, shorter); another
    process wrote the index of the new main: it is taken as it is, not a rebuild from all of main."""
    monkeypatch.setattr(index, "SAVE_EVERY_S", 3600.0)
    bumped = origin.bump(tag="1.7.0")
    assert refused(clone, bumped) == ""  # indexed and written
    base = git.Repo(origin.path).git.rev_parse("main")
    monkeypatch.setattr(index, "SAVE_AFTER", 1000)
    append(origin, 60)
    refused(clone, bumped)  # this process's index: 60 commits ahead of the written one
    append(origin, 5, {2: hold(bumped)}, base=base)  # main rewritten from before them: shorter
    monkeypatch.setattr(index, "SAVE_AFTER", 1)
    other = index.MainIndex(clone.plumbing)  # another process, sharing the clone: grows the written one
    repo = clone.plumbing.fresh()
    main = clone.plumbing.main(repo)
    assert other.at(repo, main).records(index.HELD_LINE) != []
    append(origin, 1)  # main moves on: neither index has it yet
    repo = clone.plumbing.fresh()
    main = clone.plumbing.main(repo)
    trace = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    view = index.of(clone.plumbing).at(repo, main)
    monkeypatch.delenv("GIT_TRACE")
    assert view.records(index.HELD_LINE) != []
    logs = [line for line in trace.read_text().splitlines() if "git log -z --no-renames" in line]
    assert len(logs) == 1 and " ^" in logs[0]  # grown from the written index by one commit, not rebuilt
