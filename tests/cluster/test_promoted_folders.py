"""A drift check's one walk of main for every app (`PromotedFolders.of`) answers what
`promoted_folder` answers app by app: an app promoted by a merge of promoter's (then changed by hand on
main: unpromoted), one reverted, one never promoted (compared with its seed), a release set's merge
naming two apps, a look-alike merge that is no promotion, an app a rename moved, and the source
environment (main itself); and it reads main once, not once per app."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from activities.promoted import PromotedFolders
from promoter.gitrepo import GitClone
from promoter.models import PromotedFolder
from tests.support.gitops import Origin
from tests.support.keys import keygen

APPS = ("demo", "api", "web", "jobs", "old")


def merge(origin: Origin, branch: str, files: dict[str, str], body: str, branch_body: str = "") -> str:
    """A merge into main of a branch carrying `files`, as a forge merges a PR (`--no-ff`)."""
    repo = origin.repo
    repo.git.pull("--quiet", "--rebase", "origin", "main")
    repo.git.checkout("-q", "-b", branch)
    for rel, text in files.items():
        (origin.work / rel).write_text(text)
    repo.git.add("-A")
    repo.git.commit("-q", "-m", f"branch of {branch}\n\n{branch_body}".strip())
    repo.git.checkout("-q", "main")
    repo.git.merge("--no-ff", "-q", "-m", f"Merge pull request #7 from {branch}\n\n{body}".strip(), branch)
    repo.git.push("-q", "origin", "main")
    return repo.head.commit.hexsha


def image(origin: Origin, env: str, app: str, tag: str) -> dict[str, str]:
    path = f"environments/{env}/{app}/deployment.yaml"
    return {path: re.sub(r"(image: \S+):[\w.\-]+", rf"\1:{tag}", (origin.work / path).read_text())}


def test_one_walk_answers_what_promoted_folder_answers_app_by_app(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = origin_factory(apps=APPS)
    merge(origin, "promote/demo/staging/a1", image(origin, "staging", "demo", "2.0.0"), "Promoter-Promotion: p-1")
    origin.commit(image(origin, "staging", "demo", "6.6.6"), "staging: by hand")  # unpromoted since
    merge(origin, "promote/api/staging/b2", image(origin, "staging", "api", "2.0.0"), "Promoter-Promotion: p-2")
    merge(origin, "revert/api/staging/c3", image(origin, "staging", "api", "1.0.0"), "Promoter-Held-App: api")
    both = {**image(origin, "staging", "web", "3.0.0"), **image(origin, "staging", "jobs", "3.0.0")}
    branch_body = "Release-Set-App: web\nRelease-Set-App: jobs"
    merge(origin, "promote/web-and-jobs/staging/d4", both, "Promoter-Promotion: p-3", branch_body)
    merge(origin, "feature/web", image(origin, "staging", "web", "9.9.9"), "not a promotion")
    origin.repo.git.mv("environments/staging/old", "environments/staging/renamed")
    origin.repo.git.commit("-q", "-m", "staging: rename old")
    origin.repo.git.push("-q", "origin", "main")

    clone = GitClone(origin.url, tmp_path / "cache")
    folders = PromotedFolders(clone.plumbing, clone.trusted, clone.reading)
    apps = [*APPS, "renamed"]
    for env in ("dev", "staging", "prod"):
        one_by_one = {app: clone.promoted_folder(env, app) for app in apps}
        assert folders.of(env, apps) == one_by_one, env
    staging = folders.of("staging", apps)
    assert staging["demo"].promoted and [u.commit for u in staging["demo"].unpromoted] != []
    assert staging["api"].promoted and staging["web"].promoted and staging["jobs"].promoted
    assert [u.author for u in staging["web"].unpromoted] == ["dana <dana@example.com>"]  # the look-alike merge
    assert not staging["renamed"].promoted and not staging["old"].promoted


def test_its_git_runs_do_not_grow_with_the_apps(origin_factory: Callable[..., Origin], tmp_path: Path) -> None:
    origin = origin_factory(apps=APPS)
    clone = GitClone(origin.url, tmp_path / "cache")
    runs: list[tuple[str, ...]] = []
    plumbing = clone.plumbing
    real = plumbing.run

    def counted(repo: object, *args: str) -> str:  # the real run, counted
        runs.append(args)
        return real(repo, *args)  # type: ignore[arg-type]

    plumbing.run = counted  # type: ignore[method-assign]
    folders = PromotedFolders(plumbing, clone.trusted, clone.reading)
    folders.of("staging", ["demo"])  # warm: what is read once per clone
    counts = []
    for apps in (["demo", "api"], list(APPS)):
        runs.clear()
        folders.of("staging", apps)
        counts.append(len(runs))
    assert counts[0] == counts[1]
    runs.clear()
    for app in APPS:
        clone.promoted_folder("staging", app)
    assert len(runs) >= len(APPS) > counts[1]  # app by app: a log of main each


def test_a_merge_with_an_older_first_parent_is_an_unpromoted_change_of_what_it_threw_away(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """main: demo promoted into staging (1.5.0), P, demo promoted again (2.0.0), then a stale PR branch
    (made at P, adding jobs' notes) merged. A person pushes X = P's files with parents P and main: a
    fast-forward whose first-parent line skips the promotion and the notes, putting them back as at P
    unseen. Both readings name X as an unpromoted change of demo and of jobs, and refuse to heal demo
    to 1.5.0, the promotion before P; before X, the stale branch's merge changed nothing of demo."""
    origin = origin_factory(apps=APPS)
    older = merge(origin, "promote/demo/staging/a0", image(origin, "staging", "demo", "1.5.0"), "Promoter-Promotion: o")
    before = origin.bump(app="web", env="staging", tag="0.9.0")
    promotion = image(origin, "staging", "demo", "2.0.0")
    promoted = merge(origin, "promote/demo/staging/a1", promotion, "Promoter-Promotion: p")
    repo = origin.repo
    repo.git.checkout("-q", "-b", "stale", before)  # a PR branch made before the promotion, merged after it
    (origin.work / "environments/staging/jobs/NOTES.md").write_text("notes\n")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "jobs notes")
    repo.git.checkout("-q", "main")
    repo.git.merge("--no-ff", "-q", "-m", "Merge pull request #8 from stale", "stale")
    repo.git.push("-q", "origin", "main")
    clone = GitClone(origin.url, tmp_path / "cache")
    folders = PromotedFolders(clone.plumbing, clone.trusted, clone.reading)
    assert folders.of("staging", ["demo"])["demo"].revision == promoted  # the stale branch's merge: nothing
    assert folders.of("staging", ["demo"])["demo"].unpromoted == []
    assert folders.of("staging", ["demo"])["demo"].unhealable == ""
    thrown = repo.git.execute(["git", "commit-tree", f"{before}^{{tree}}", "-p", before, "-p", "main"])
    repo.git.push("-q", "origin", f"{thrown}:refs/heads/main")
    apps = ("demo", "jobs")
    for found in (folders.of("staging", list(apps)), {a: clone.promoted_folder("staging", a) for a in apps}):
        assert [u.commit for u in found["demo"].unpromoted] == [thrown], found
        assert found["demo"].revision == older and "off its first-parent line" in found["demo"].unhealable
        assert [u.commit for u in found["jobs"].unpromoted][:1] == [thrown], found  # its notes thrown away too


def test_a_push_with_an_empty_message_is_still_an_unpromoted_change(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """A commit with no message (`--allow-empty-message`) was dropped by the per-app reading (its log line
    ended in the separator, which Python's strip() takes for whitespace): now named like any other."""
    origin = origin_factory(apps=APPS)
    promoted = merge(
        origin, "promote/demo/staging/a1", image(origin, "staging", "demo", "2.0.0"), "Promoter-Promotion: p"
    )
    for rel, text in image(origin, "staging", "demo", "6.6.6").items():
        (origin.work / rel).write_text(text)
    origin.repo.git.execute(["git", "commit", "-qa", "--allow-empty-message", "-m", ""])
    origin.repo.git.push("-q", "origin", "main")
    silent = origin.repo.head.commit.hexsha
    clone = GitClone(origin.url, tmp_path / "cache")
    folders = PromotedFolders(clone.plumbing, clone.trusted, clone.reading)
    for found in (clone.promoted_folder("staging", "demo"), folders.of("staging", ["demo"])["demo"]):
        assert found.revision == promoted and [u.commit for u in found.unpromoted] == [silent], found


def both(clone: GitClone, apps: tuple[str, ...]) -> list[dict[str, PromotedFolder]]:
    """The drift check's one walk, and promoted_folder app by app."""
    folders = PromotedFolders(clone.plumbing, clone.trusted, clone.reading)
    return [folders.of("staging", list(apps)), {a: clone.promoted_folder("staging", a) for a in apps}]


def test_an_older_first_parent_never_lets_drift_heal_an_app_back(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """demo promoted into staging (1.5.0), P, demo promoted again (2.0.0). Whether a person merges main
    into a branch made at P and pushes it as main (honest: main's files kept) or pushes P's files with
    one more file of demo's (thrown away and edited), 2.0.0's merge is off main's first-parent line: the
    revision found is 1.5.0's, and a heal must not apply it."""
    for edited in (False, True):
        origin = origin_factory(apps=APPS)
        merge(origin, "promote/demo/staging/a0", image(origin, "staging", "demo", "1.5.0"), "Promoter-Promotion: o")
        before = origin.bump(app="web", env="staging", tag="0.9.0")
        merge(origin, "promote/demo/staging/a1", image(origin, "staging", "demo", "2.0.0"), "Promoter-Promotion: p")
        repo = origin.repo
        repo.git.checkout("-q", "-b", "old", before)
        if edited:  # P's files, and a README of demo's: the merge now changed demo's folder against P
            (origin.work / "environments/staging/demo/README.md").write_text("hi\n")
            repo.git.add("-A")
            tree = repo.git.write_tree()
        else:
            tree = repo.git.execute(["git", "rev-parse", "main^{tree}"])
        pushed = repo.git.execute(["git", "commit-tree", tree, "-p", before, "-p", "main"])
        repo.git.checkout("-q", "-f", "main")
        repo.git.push("-q", "origin", f"{pushed}:refs/heads/main")
        for found in both(GitClone(origin.url, tmp_path / f"cache{edited}"), ("demo",)):
            assert "off its first-parent line" in found["demo"].unhealable, (edited, found)


def test_a_branch_brought_up_to_date_with_main_throws_nothing_away(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """A PR branch, brought up to date with main after demo's promotion ("Update branch": main merged
    into it), is merged after demo's next promotion: nothing of demo is reported, and it may be healed."""
    origin = origin_factory(apps=APPS)
    repo = origin.repo
    start = repo.head.commit.hexsha
    merge(origin, "promote/demo/staging/a1", image(origin, "staging", "demo", "2.0.0"), "Promoter-Promotion: p1")
    repo.git.checkout("-q", "-b", "pr", start)
    (origin.work / "environments/staging/jobs/NOTES.md").write_text("notes\n")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "jobs notes")
    repo.git.merge("-q", "--no-ff", "-m", "Merge main into pr", "main")
    repo.git.checkout("-q", "main")
    latest = merge(
        origin, "promote/demo/staging/a2", image(origin, "staging", "demo", "3.0.0"), "Promoter-Promotion: p2"
    )
    repo.git.merge("--no-ff", "-q", "-m", "Merge pull request #9 from pr", "pr")
    repo.git.push("-q", "origin", "main")
    for found in both(GitClone(origin.url, tmp_path / "cache"), ("demo",)):
        assert found["demo"].revision == latest and found["demo"].unpromoted == [], found
        assert found["demo"].unhealable == ""


def test_a_look_alike_merge_on_main_s_line_does_not_turn_healing_off(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """promoter signs its commits; demo promoted into staging by a merge whose branch commit it signed. A
    person pushes a merge named like a promotion of demo (its branch unsigned) on main's line: an
    unpromoted change, compared with the real promotion, and still healed (it moved no merge aside)."""
    key = tmp_path / "promoter"
    origin = origin_factory(apps=APPS)
    origin.commit({"trust/allowed_signers": f'promoter namespaces="git" {keygen(key)}\n'}, "promoter signs")
    repo = origin.repo
    repo.git.checkout("-q", "-b", "promote/demo/staging/a1")
    for rel, text in image(origin, "staging", "demo", "2.0.0").items():
        (origin.work / rel).write_text(text)
    repo.git.add("-A")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub", "commit", "-S", "-q", "-m", "promote"]
    repo.git.execute(["git", *sign])
    repo.git.checkout("-q", "main")
    message = "Merge pull request #7 from promote/demo/staging/a1\n\nPromoter-Promotion: p"
    repo.git.merge("--no-ff", "-q", "-m", message, "promote/demo/staging/a1")
    repo.git.push("-q", "origin", "main")
    promoted = repo.head.commit.hexsha
    forged = merge(
        origin, "promote/demo/staging/ff", image(origin, "staging", "demo", "6.6.6"), "Promoter-Promotion: x"
    )
    clone = GitClone(origin.url, tmp_path / "cache")
    clone.sign_commits_with(key.read_bytes())
    for found in both(clone, ("demo",)):
        assert found["demo"].revision == promoted and [u.commit for u in found["demo"].unpromoted] == [forged]
        assert found["demo"].unhealable == "", found
