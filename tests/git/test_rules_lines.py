"""Two lines of signed rule changes on main: a clone takes the rules of neither when it cannot tell which
line was main, and goes on when it can.

A person who can push to main, and holds old commits a trusted key signed (a closed rules PR, a PR's
commits from before a rebase), can push a fast-forward merge that puts them on main's first-parent
line, beside the signed changes main really took. A clone that saw main after those changes goes on
from them. One that did not (a new clone, one whose last look was before them, any after main was
rewritten) cannot tell the lines apart: whichever it took might be the old one, so it takes none and
says how to settle it (tests/git/test_trusted_rules.py has the single old commit of the same kind).
Each case with the index of main and by git alone. Found by review: a closed PR of two signed commits,
an old commit that rotates the platform key, and a clone that had not yet seen the newer line each got
older rules past the first version of this check; a feature branch merged after a signed change made a
rules PR signed on that change count as made on older rules."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from promoter.errors import BadInput
from promoter.gitrepo import GitClone
from promoter.models import PromotionRequest
from tests.git.test_trusted_rules import fast_forward_merge, prod_yaml
from tests.support.gitops import Origin
from tests.support.keys import commit_signed, keygen

UNSETTLED = "signed rules changes on two lines since this clone last saw it"


@pytest.fixture(params=[True, False], ids=["index", "git"])
def keyed(
    request: pytest.FixtureRequest,
    origin_factory: Callable[..., Origin],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Origin, dict[str, Path], dict[str, str], str]:
    """An origin whose trust/allowed_signers lists platform for git (its main then is the trust root)."""
    from promoter.git import index

    if not request.param:
        monkeypatch.setattr(index, "view", lambda *_: None)
    keys = {name: tmp_path / name for name in ("platform", "platform2", "promoter")}
    public = {name: keygen(path) for name, path in keys.items()}
    origin = origin_factory()
    allowed = f'platform namespaces="git" {public["platform"]}\npromoter namespaces="git" {public["promoter"]}\n'
    root = origin.commit({"trust/allowed_signers": allowed}, "trust: who signs rule changes")
    return origin, keys, public, root


def closed_pr(origin: Origin, key: Path, base: str, changes: list[tuple[dict[str, str], str]]) -> list[str]:
    """Signed commits on a branch from `base`, never merged; their shas."""
    repo, made = origin.repo, []
    repo.git.checkout("-q", "--detach", base)
    for files, message in changes:
        for rel, text in files.items():
            (origin.work / rel).parent.mkdir(parents=True, exist_ok=True)
            (origin.work / rel).write_text(text)
            repo.git.add(rel)
        repo.git.execute(["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub", "commit", "-S", "-q",
                          "-m", message])  # fmt: skip
        made.append(repo.head.commit.hexsha)
    repo.git.checkout("-q", "main")
    return made


def unsettled(*clones: GitClone) -> None:
    """Each clone takes no rules, saying the two lines are unsettled."""
    for clone in clones:
        with pytest.raises(BadInput, match=UNSETTLED):
            clone.rules()


def required(clone: GitClone) -> int:
    return clone.resolve(PromotionRequest(app="demo")).environments[-1].config.approval.required


def test_an_old_signed_chain_on_main_s_line_takes_in_nothing_unseen(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """A closed PR of two signed commits O1, O2 made on the root; main: S (signed: prod needs two), N.
    Pushed: K = S's files with parents O1 and N, then M = O2's files with parents K and O2. A new
    clone met O1, left S out as made on older rules, then took O2 on top of O1: prod needed one again,
    and nothing was named. It takes nothing now; the clone that saw N keeps S's rules."""
    origin, keys, _, root = keyed
    o1, o2 = closed_pr(
        origin, keys["platform"], root, [({"policies/a.txt": "a"}, "O1"), ({"policies/a.txt": "b"}, "O2")]
    )
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    main = origin.bump(tag="5.0.0")
    assert seen.rules(main).commit == strict
    k = fast_forward_merge(origin, strict, o1, main, "K")
    fast_forward_merge(origin, o2, k, o2, "M")
    with pytest.raises(BadInput, match=UNSETTLED):
        GitClone(origin.url, tmp_path / "fresh", trust_root=root).rules()
    assert required(seen) == 2 and seen.rules().untrusted != []  # M, K: named, not used
    assert required(GitClone(origin.url, seen.plumbing.path.parent, trust_root=root)) == 2  # its mark, a new process


def test_an_old_signed_key_rotation_on_main_s_line_takes_in_nothing_unseen(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """O, a closed PR made on the root and signed by platform, lists platform2 instead. Pushed after S:
    M = O's files with parents O and N. Taking O first, a new clone judged S by O's trust/, found its
    key unknown (not 'older rules') and kept O's rules; S is signed by a key the root trusted, so the
    two lines are told apart by nothing here either: nothing is taken."""
    origin, keys, public, root = keyed
    allowed = (origin.work / "trust/allowed_signers").read_text().replace(public["platform"], public["platform2"])
    (rotation,) = closed_pr(origin, keys["platform"], root, [({"trust/allowed_signers": allowed}, "O: rotate")])
    commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    main = origin.bump(tag="6.0.0")
    fast_forward_merge(origin, rotation, rotation, main, "M")
    with pytest.raises(BadInput, match=UNSETTLED):
        GitClone(origin.url, tmp_path / "fresh", trust_root=root).rules()
    assert GitClone(origin.url, tmp_path / "settled", trust_root=main).rules().commit == main  # a newer root settles it


def test_a_clone_that_had_not_seen_the_newer_line_takes_in_nothing_either(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """The clone last saw main at the root. S lands and the merge putting O on main's line is pushed
    before the clone looks again: in this process and from its mark, it takes nothing."""
    origin, keys, _, root = keyed
    (old,) = closed_pr(origin, keys["platform"], root, [({"policies/a.txt": "old"}, "O")])
    stale = GitClone(origin.url, tmp_path / "stale", trust_root=root)
    assert stale.rules().commit == root
    commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    fast_forward_merge(origin, old, old, origin.bump(tag="7.0.0"), "M")
    unsettled(stale, GitClone(origin.url, tmp_path / "stale", trust_root=root))  # and a new process of it


def test_a_rules_pr_signed_on_main_is_taken_after_a_feature_branch_merged_beside_it(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """A feature branch from the root, no rule file touched, merged after S (the merge G has S's rules);
    then P, a rules PR signed on top of S, merged. G was a newer name for S's rules, and P, not made on
    top of G, was left out as made on older rules (by every clone, and new ones stopped): it is taken."""
    origin, keys, _, root = keyed
    repo = origin.repo
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    repo.git.checkout("-q", "-b", "feature", root)
    deployment = origin.work / "environments/dev/demo/deployment.yaml"
    deployment.write_text(deployment.read_text() + "\n# feature\n")
    repo.git.commit("-q", "-am", "feature work")
    repo.git.checkout("-q", "main")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    assert seen.rules().commit == strict
    (pr,) = closed_pr(origin, keys["platform"], strict, [({"policies/p.txt": "p"}, "P: a rules PR")])
    repo.git.merge("--no-ff", "-q", "-m", "Merge the feature", "feature")
    repo.git.push("-q", "origin", "main")
    assert seen.rules().commit != strict  # G: the same rules, a newer name
    repo.git.merge("--no-ff", "-q", "-m", "Merge the rules PR", pr)
    repo.git.push("-q", "origin", "main")
    for clone in (seen, GitClone(origin.url, tmp_path / "fresh", trust_root=root)):
        rules = clone.rules()
        assert rules.untrusted == [] and clone.plumbing.is_ancestor(clone.plumbing.have(None), pr, rules.commit), rules


def test_a_rules_pr_branched_before_main_as_last_seen_counts_when_merged_after(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """The clone last saw X (a non-rules commit after the root). S, a rules PR signed on the root and
    branched before X, is merged after it; then O (a closed PR signed on the root) is put on main's line
    by a pushed merge. S was not counted (it does not descend from X), and the clone took O's rules,
    in this process and from its mark: it is made on the rules the clone had taken, so it counts."""
    origin, keys, _, root = keyed
    (old,) = closed_pr(origin, keys["platform"], root, [({"policies/a.txt": "closed"}, "O")])
    (strict,) = closed_pr(origin, keys["platform"], root, [(prod_yaml(origin, "required: 1", "required: 2"), "S")])
    stale = GitClone(origin.url, tmp_path / "stale", trust_root=root)
    assert stale.rules(origin.bump(tag="8.0.0")).commit == root
    origin.repo.git.merge("--no-ff", "-q", "-m", "Merge the rules PR", strict)
    origin.repo.git.push("-q", "origin", "main")
    fast_forward_merge(origin, old, old, origin.repo.head.commit.hexsha, "M")
    unsettled(stale, GitClone(origin.url, tmp_path / "stale", trust_root=root))  # and a new process of it


def test_a_sealed_break_glass_on_the_line_hides_no_signed_change_after_it(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """Main: a break-glass promoter sealed (its file stays), then S. Against O (a closed PR signed on the
    root, put on main's line by a pushed merge), S 'adds a break-glass', so it was not counted as a
    signed line: new and stale clones took O's rules. The clone that saw S keeps them."""
    from promoter import breakglass

    origin, keys, _, root = keyed
    (old,) = closed_pr(origin, keys["platform"], root, [({"policies/a.txt": "closed"}, "O")])
    stale = GitClone(origin.url, tmp_path / "stale", trust_root=root)
    assert stale.rules().commit == root
    gid = "demo-prod-20261203090000"
    sealed = breakglass.seal_trailers(gid, "demo", "prod", "2026-12-03T18:00:00Z", "incident", [])
    commit_signed(origin, keys["promoter"], {breakglass.path(gid): "app: demo\n"}, f"break-glass\n\n{sealed}")
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    seen = GitClone(origin.url, tmp_path / "seen", trust_root=root)
    assert seen.rules().commit == strict
    fast_forward_merge(origin, old, old, origin.bump(tag="9.0.0"), "M")
    unsettled(GitClone(origin.url, tmp_path / "fresh", trust_root=root), stale)
    assert required(seen) == 2


def test_a_mark_written_before_its_base_was_kept_is_walked_again_from_the_root(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """A mark of two fields (root, revision) names no base; after a feature merge its revision is a newer
    name G for S's rules, and a rules PR signed on S would count as made on older rules from it."""
    origin, keys, _, root = keyed
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    (pr,) = closed_pr(origin, keys["platform"], strict, [(prod_yaml(origin, "required: 2", "required: 3"), "P")])
    main = origin.bump(tag="10.0.0")
    clone = GitClone(origin.url, tmp_path / "old", trust_root=root)
    assert clone.rules(main).commit == strict
    (clone.plumbing.path / ".git" / "promoter-trusted").write_text(f"{root} {main}\n")  # as older versions wrote it
    origin.repo.git.merge("--no-ff", "-q", "-m", "Merge the rules PR", pr)
    origin.repo.git.push("-q", "origin", "main")
    assert required(GitClone(origin.url, tmp_path / "old", trust_root=root)) == 3  # a new process, the old mark


def test_a_clone_that_kept_up_takes_no_signed_change_made_on_an_old_commit_with_today_s_rules(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """A closed PR signed on the root: Q1 changes prod, Q2 changes it back (the root's rules again), Y
    loosens. Main: S (signed), V (signed, back to the root's rules). A pushed merge with parents Q2, Y
    and V: Q2, now on main's line with today's rules, became the trusted revision's newer name, and the
    merge then counted as bringing Y, signed on top of it: the clone that kept up took Y's rules."""
    origin, keys, _, root = keyed
    path = "environments/prod/environment.yaml"
    text = (origin.work / path).read_text()
    strict = {path: text.replace("required: 1", "required: 2")}
    _, q2, loose = closed_pr(
        origin,
        keys["platform"],
        root,
        [(strict, "Q1"), ({path: text}, "Q2: back"), ({"policies/LOOSE.txt": "loose"}, "Y: loosen")],
    )
    commit_signed(origin, keys["platform"], strict, "S: two")
    back = commit_signed(origin, keys["platform"], {path: text}, "V: back to one")
    kept_up = GitClone(origin.url, tmp_path / "kept-up", trust_root=root)
    assert kept_up.rules().commit == back
    tree = origin.repo.git.rev_parse(f"{loose}^{{tree}}")
    merge = origin.repo.git.execute(["git", "commit-tree", tree, "-p", q2, "-p", loose, "-p", back, "-m", "X"])
    origin.repo.git.push("-q", "origin", f"{merge}:refs/heads/main")
    rules = kept_up.rules()
    assert rules.commit == back and merge in {c.commit for c in rules.untrusted}, rules


def _commit(origin: Origin, tree: str, parents: list[str], message: bytes, date: str = "") -> str:
    """A commit as a pusher makes it with plumbing (any tree, any parents, any message bytes)."""
    env = {**os.environ, **({"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date} if date else {})}
    args = ["git", "-C", str(origin.work), "commit-tree", tree, *(a for p in parents for a in ("-p", p))]
    return subprocess.run(args, input=message, capture_output=True, env=env, check=True).stdout.decode().strip()


def test_a_file_named_with_the_index_s_separator_hides_no_signed_change(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """A side commit, dated before S, holds a file named "x\\x1e<S>"; merged keeping S's files. The index
    read git's log split at that byte: a false record for S, naming no rule file, overwrote S's own, and
    every clone on the index kept the root's rules. Such a log is refused, and the walk reads git."""
    origin, keys, _, root = keyed
    strict = commit_signed(origin, keys["platform"], prod_yaml(origin, "required: 1", "required: 2"), "S: two")
    git_ = ["git", "-C", str(origin.work)]
    blob = subprocess.run([*git_, "hash-object", "-w", "--stdin"], input=b"", capture_output=True, check=True)
    listing = subprocess.run([*git_, "ls-tree", f"{root}^{{tree}}"], capture_output=True, check=True).stdout
    listing += b"100644 blob " + blob.stdout.strip() + b"\tx\x1e" + strict.encode() + b"\n"
    tree = subprocess.run([*git_, "mktree"], input=listing, capture_output=True, check=True).stdout.decode().strip()
    side = _commit(origin, tree, [root], b"a file", date="2001-01-01T00:00:00Z")
    strict_tree = origin.repo.git.rev_parse(f"{strict}^{{tree}}")
    origin.repo.git.push("-q", "origin", f"{_commit(origin, strict_tree, [strict, side], b'M')}:refs/heads/main")
    assert required(GitClone(origin.url, tmp_path / "fresh", trust_root=root)) == 2


def test_a_message_holding_the_log_s_separators_passes_no_text_off_as_another_commit_s(
    keyed: tuple[Origin, dict[str, Path], dict[str, str], str], tmp_path: Path
) -> None:
    """Messages were split out of one git run's output at \\x1e and \\x1f: a commit whose message holds
    "\\x1e<L>\\x1f<text>" made <text> read as L's message, and a hold's or a lift's record carries its
    message while its signature is checked on L itself. Each message is now read from its own commit."""
    origin, keys, _, root = keyed
    from promoter import holds

    real = f"lift\n\n{holds.LIFT}: the real one"
    lift = commit_signed(origin, keys["promoter"], {"policies/l.txt": "l"}, real)
    forged = f"ordinary\x1e{lift}\x1f2026-12-04T10:00:00+00:00\x1f{holds.LIFT}: a forged one\n".encode()
    tree = origin.repo.git.rev_parse(f"{lift}^{{tree}}")
    pushed = _commit(origin, tree, [lift], forged)
    origin.repo.git.push("-q", "origin", f"{pushed}:refs/heads/main")
    clone = GitClone(origin.url, tmp_path / "clone", trust_root=root)
    repo = clone.plumbing.have(None)
    texts = clone.plumbing.messages(repo, [pushed, lift])
    assert texts[lift] == real and "forged" in texts[pushed], texts
    from promoter.git import index

    found = index.of(clone.plumbing).at(repo, pushed).records(index.LIFT_LINE)
    assert {r["sha"]: r["message"] for r in found}.get(lift) == real, found
