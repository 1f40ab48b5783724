"""Git's objects and refs read and written by the worker itself (promoter.git.objects), checked against
git: objects written with no `git hash-object` run, refs resolved as `git rev-parse` resolves them
(loose, packed, symbolic, annotated tags), the object cache's bound, the clone's housekeeping run
at most once a minute instead of after every fetch, ancestry walked in process as git answers it, a
commit's author and subject read as git log shows them, a new branch pushed without asking the remote
first, and main's held commits read once per main."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from promoter.errors import BadInput, TemporaryError
from promoter.git import commits, objects, trees
from promoter.gitrepo import GitClone
from tests.support.gitops import Origin


def run(cwd: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, check=True).stdout.decode()


def test_objects_are_written_in_process_and_git_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "repo"
    git.Repo.init(path)
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    repo = git.Repo(path)
    blob = objects.store(repo, b"blob", b"hello\n")
    tree = trees.write_tree(repo, [("100644", "a.txt", blob)])
    commit = objects.store(
        repo, b"commit", f"tree {tree}\nauthor a <a@x> 0 +0000\ncommitter a <a@x> 0 +0000\n\nm\n".encode()
    )
    assert objects.store(repo, b"blob", b"hello\n") == blob  # written once: the second time is a no-op
    written = trace.read_text() if trace.exists() else ""
    monkeypatch.delenv("GIT_TRACE")
    assert "hash-object" not in written  # no git run per object
    assert blob == run(path, "hash-object", "--stdin", data=b"hello\n").strip()
    assert run(path, "cat-file", "-t", commit).strip() == "commit"
    assert "a.txt" in run(path, "ls-tree", tree)
    run(path, "update-ref", "refs/heads/main", commit)
    run(path, "fsck", "--strict", "--no-dangling")  # every object well formed, as git writes them
    assert objects.raw(repo, blob) == b"hello\n" and objects.rev(repo, commit) == commit


def test_refs_resolve_as_git_resolves_them(origin: Origin, clone: GitClone) -> None:
    """Loose and packed refs, a symbolic ref, an annotated tag (peeled to its commit), a branch that
    is both packed and loose (the loose one wins), and names that are no ref."""
    first = origin.bump()
    repo = clone.plumbing.fresh()
    path = Path(repo.git_dir).parent
    run(path, "-c", "user.name=t", "-c", "user.email=t@x", "tag", "-a", "-m", "t", "v1", first)
    run(path, "branch", "packed", first)
    run(path, "pack-refs", "--all")
    second = origin.bump(tag="1.2.0")
    repo = clone.plumbing.fresh()  # origin/main loose again, its old value still in packed-refs
    run(path, "symbolic-ref", "refs/heads/alias", "refs/remotes/origin/main")
    names = ["origin/main", "refs/remotes/origin/main", "v1", "packed", "alias", "HEAD", "main", "nope", "origin/nope"]
    for name in names:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{name}^{{commit}}"], cwd=path, capture_output=True, check=False
        )
        assert objects.rev(repo, name) == (found.stdout.decode().strip() or None), name
    assert objects.rev(repo, "origin/main") == second != first


def test_the_object_cache_keeps_at_most_its_bound() -> None:
    cache = objects.ObjectCache(max_bytes=64)
    for i in range(10):
        cache.put(("store", f"{i:040x}"), "blob", b"x" * 3)
        cache.put_tree(("store", f"{i:040x}"), (("100644", "a", "0" * 40),))
    cache.put(("store", "big"), "blob", b"x" * 5)  # over a sixteenth of the bound: never kept
    assert cache.get(("store", "big")) is None
    cache.put(("store", "a" * 40), "blob", b"y" * 60)
    assert cache.get(("store", "a" * 40)) is None  # too big as well
    for i in range(20):
        cache.put(("store", f"{100 + i:040x}"), "blob", b"z" * 4)
    assert cache.get(("store", f"{0:040x}")) is None and cache.tree(("store", f"{0:040x}")) is None  # dropped
    assert cache.get(("store", f"{119:040x}")) == ("blob", b"z" * 4)


def test_housekeeping_runs_once_for_many_fetches(
    origin: Origin, clone: GitClone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch no longer runs `git maintenance run --auto` (and through it `gc --auto`) itself: the
    clone runs it after the first fetch, then at most once a minute."""
    trace = tmp_path / "fetch-trace"
    for i in range(3):
        origin.bump(tag=f"1.{i + 5}.0")
        with monkeypatch.context() as traced:
            traced.setenv("GIT_TRACE", str(trace))
            clone.plumbing.fresh()
    lines = trace.read_text().splitlines()
    fetches = [line for line in lines if "built-in: git fetch" in line]
    assert len(fetches) == 3 and all("--no-auto-maintenance" in line for line in fetches)
    assert sum("built-in: git maintenance run --auto" in line for line in lines) == 1


def test_a_commit_is_its_own_ancestor_without_a_git_run(
    origin: Origin, clone: GitClone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = origin.bump(tag="1.9.0")
    repo = clone.plumbing.fresh()
    trace = tmp_path / "ancestor-trace"
    with monkeypatch.context() as traced:
        traced.setenv("GIT_TRACE", str(trace))
        assert clone.plumbing.is_ancestor(repo, first, first)
    assert "merge-base" not in (trace.read_text() if trace.exists() else "")
    assert not clone.plumbing.is_ancestor(repo, "0" * 40, "0" * 40)  # no such commit: not its own ancestor
    second = origin.bump(tag="1.9.1")
    repo = clone.plumbing.fresh()
    assert clone.plumbing.is_ancestor(repo, first, second) and not clone.plumbing.is_ancestor(repo, second, first)


def test_ancestry_is_walked_in_process_and_answers_as_git_does(
    origin: Origin, clone: GitClone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history with a merged side branch and an unmerged one: every pair answered as
    `git merge-base --is-ancestor` answers it, with no git run; past `ANCESTRY_WALK` commits, by git."""
    from promoter.git import clone as plumbing_module

    person = origin.repo.git
    base = origin.bump(tag="2.0.0")
    person.checkout("-q", "-b", "side")
    side = [origin.repo.index.commit(f"side {i}").hexsha for i in range(2)]
    person.push("-q", "origin", "side")
    person.checkout("-q", "main")
    ahead = origin.bump(tag="2.0.1")
    person.merge("--no-ff", "-q", "-m", "merge side", "side")
    person.push("-q", "origin", "main")
    merged = origin.repo.head.commit.hexsha
    later = origin.bump(tag="2.0.2")
    person.checkout("-q", "side")
    unmerged = origin.repo.index.commit("side 2").hexsha
    person.push("-q", "origin", "side")
    person.checkout("-q", "main")
    repo = clone.plumbing.fresh()
    repo = clone.plumbing.have(unmerged)  # the side branch fetched too
    commits = [base, *side, ahead, merged, later, unmerged]

    def git_says(sha: str, of: str) -> bool:
        return subprocess.run(["git", "merge-base", "--is-ancestor", sha, of], cwd=repo.working_dir).returncode == 0

    expected = {(a, b): git_says(a, b) for a in commits for b in commits}
    assert sum(expected.values()) > len(commits) and not all(expected.values())  # both answers occur
    trace = tmp_path / "walk-trace"
    with monkeypatch.context() as traced:
        traced.setenv("GIT_TRACE", str(trace))
        answers = {(a, b): clone.plumbing.is_ancestor(repo, a, b) for a in commits for b in commits}
    assert answers == expected
    assert "merge-base" not in (trace.read_text() if trace.exists() else "")
    monkeypatch.setattr(plumbing_module, "ANCESTRY_WALK", 1)  # a long history: past the walk, git answers
    with monkeypatch.context() as traced:
        traced.setenv("GIT_TRACE", str(trace))
        assert clone.plumbing.is_ancestor(repo, base, later) and not clone.plumbing.is_ancestor(repo, unmerged, later)
    assert "merge-base --is-ancestor" in trace.read_text()


@pytest.mark.parametrize(
    "ident, message",
    [
        ("dana <dana@example.com>", "demo 1.1.0\n"),
        ("Zoë  Ø <z@x>", "\n\n  first line  \nsecond line\t\n\nbody\n"),
        ("x <>", "one paragraph\nover\nthree lines"),
        ("nameless <n@x>", ""),
    ],
)
def test_a_commits_author_and_subject_are_read_as_git_log_shows_them(tmp_path: Path, ident: str, message: str) -> None:
    path = tmp_path / "repo"
    git.Repo.init(path)
    repo = git.Repo(path)
    tree = trees.write_tree(repo, [])
    raw = f"tree {tree}\nauthor {ident} 0 +0000\ncommitter c <c@x> 0 +0000\n\n{message}".encode()
    commit = objects.store(repo, b"commit", raw)
    shown = run(path, "log", "-1", "--format=%an <%ae>%x00%s", commit).rstrip("\n").split("\0")
    assert [commits.author(repo, commit), commits.subject(repo, commit)] == shown


def test_parsed_trees_count_toward_the_object_caches_bound() -> None:
    """An environment's folder of 1,000 apps is 34 KB as git stores it and about 271 KB parsed: the
    parsed entries count toward the bound, so a worker's cache stays within it (a thousand waiting gates'
    trees once held several hundred MiB of parsed entries beside 64 MiB of objects)."""
    items = tuple(("040000", f"app-{i:03d}", f"{i:040x}") for i in range(1000))
    one = 34_000 + len(items) * objects.TREE_ENTRY_BYTES
    cache = objects.ObjectCache(max_bytes=16 * 34_000 * 4)  # room for the objects of 64 such trees, 7 parsed
    for n in range(20):
        key = ("store", f"{n:040x}")
        cache.put(key, "tree", b"t" * 34_000)
        cache.put_tree(key, items)
    kept = [n for n in range(20) if cache.tree(("store", f"{n:040x}")) is not None]
    assert kept == list(range(20 - cache.max_bytes // one, 20)), kept  # the newest, as many as fit
    assert cache._size <= cache.max_bytes


def test_an_object_reader_out_of_step_heals_and_never_caches_another_objects_content(tmp_path: Path) -> None:
    """An object left unread (as a size refusal leaves one) puts git's `cat-file --batch` reader out of
    step: the next read fails, and a new reader answers the one after it truly; nothing read out of step
    is kept under another object's ID."""
    run(tmp_path, "init", "-q")
    for i in range(3):
        (tmp_path / f"f{i}").write_text(f"content {i}\n")
    run(tmp_path, "add", ".")
    run(tmp_path, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "three files")
    repo = git.Repo(tmp_path)
    shas = [run(tmp_path, "rev-parse", f"HEAD:f{i}").strip() for i in range(3)]
    left = repo.odb.stream(bytes.fromhex(shas[0]))  # its header read, its content left in the reader while held
    with pytest.raises(ValueError):
        objects.typed(repo, shas[1])
    assert objects.CACHE.get(objects.cache_key(repo, shas[1])) is None
    assert objects.typed(repo, shas[1]) == ("blob", b"content 1\n")
    assert objects.typed(repo, shas[2]) == ("blob", b"content 2\n")
    assert left.size == len(b"content 0\n")


def test_a_new_branch_is_pushed_without_asking_the_remote_first(
    origin: Origin, clone: GitClone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage's branch is new but on a retry: it is pushed expecting it absent, with no `ls-remote`
    first; pushed again (a retry), it is found and returned as it is, not pushed over."""
    from promoter.models import PrepareInput

    sha = origin.bump(tag="3.0.0")
    req = PrepareInput(app="demo", commit=sha, source_env="dev", target_env="staging", local_files=["configmap.yaml"])
    trace = tmp_path / "push-trace"
    with monkeypatch.context() as traced:
        traced.setenv("GIT_TRACE", str(trace))
        pushed = clone.push_branch(req)
    said = trace.read_text()
    assert "built-in: git push" in said and "ls-remote" not in said
    assert git.Repo(origin.path).commit(f"refs/heads/{pushed.branch}").hexsha == pushed.head
    again = clone.push_branch(req)
    assert again.head == pushed.head and again.branch == pushed.branch


def test_the_held_commits_are_read_once_per_main(
    origin: Origin, clone: GitClone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promotions started together resolve on the same main: its commits that hold an app are read
    with one `git log` for all of them, and each app's holds picked from those."""
    from promoter.models import PromotionRequest

    origin.bump(tag="4.0.0")
    trace = tmp_path / "holds-trace"
    with monkeypatch.context() as traced:
        traced.setenv("GIT_TRACE", str(trace))
        plans = [clone.resolve(PromotionRequest(app="demo")) for _ in range(3)]
    assert len({p.commit for p in plans}) == 1
    assert sum("--grep=^Promoter-Held-App: " in line for line in trace.read_text().splitlines()) == 1


def test_a_reader_out_of_step_never_answers_with_another_objects_content(tmp_path: Path) -> None:
    """An object left half read (a thread activity cancelled mid-read: the SDK raises into the thread
    at any point) whose content looks like the reader's next answer: the next read would take another
    object's content for its own. It is refused (it does not hash to the ID asked), never cached, and
    the read after it is true; a read refused by its size check leaves no half-read object behind."""
    run(tmp_path, "init", "-q")
    other = run(tmp_path, "hash-object", "-w", "--stdin", data=b"apiVersion: v1\n").strip()
    decoy = run(tmp_path, "hash-object", "-w", "--stdin", data=f"{other} blob 15\napiVersion: v1\n\n".encode()).strip()
    asked = run(tmp_path, "hash-object", "-w", "--stdin", data=b"kind: ConfigMap\n").strip()
    repo = git.Repo(tmp_path)
    held = repo.odb.stream(bytes.fromhex(decoy))  # cancelled after the header: its content stays in the reader
    with pytest.raises(TemporaryError, match="answered .* with another object"):
        objects.typed(repo, asked)
    assert objects.CACHE.get(objects.cache_key(repo, asked)) is None
    assert objects.typed(repo, asked) == ("blob", b"kind: ConfigMap\n")

    def too_big(size: int) -> None:
        raise BadInput(f"{size} bytes: too big")

    with pytest.raises(BadInput):
        objects.read(repo, decoy, too_big)
    assert objects.read(repo, other) == ("blob", b"apiVersion: v1\n")
    assert held.size == len(f"{other} blob 15\napiVersion: v1\n\n")
