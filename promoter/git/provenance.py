"""Reading who and what shaped an app's folder, from main's commits alone: its history (promotions,
reverts, lifted holds, each promotion's approvals verified again), the people on a promoted range
(`authors`), the commits of it that carry no trusted signature, and what drift compares a folder with.

Each reading fails closed: a merge promoter did not sign, a squash merge or a reverted promotion never
narrows a range (more authors, never fewer), and a range too long to read is said to be unknown.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import git

from promoter import history, holds, proofs, signing
from promoter.errors import BadInput, NotFound
from promoter.git import index as main_index
from promoter.git import objects
from promoter.git.clone import Clone
from promoter.git.folders import Aside, folder_log, judged
from promoter.git.objects import MAIN, TREE
from promoter.git.reading import GitOpsReader
from promoter.git.rules import TrustedRules
from promoter.models import PromotedFolder, RuleChange
from promoter.names import ENVIRONMENTS, app_folder, check, shown

MAX_AUTHOR_COMMITS = 10_000  # commits of a promoted range read for its authors; past that they are unknown
MAX_SIGNERS_BYTES = 1_000_000  # trust/allowed_signers, as the authors' signatures are verified against it
# one commit's people, as `git log` prints them: commit, author, committer, signature (status, signer, key)
_PEOPLE = "%H%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%G?%x1f%GS%x1f%GK%x1e"


@dataclass(frozen=True)
class Touch:
    """A commit of a promoted range that touched an app's folder, and the people on it."""

    commit: str
    author: str  # "Name <email>", as the commit says (never mapped through a .mailmap)
    committer: str  # "Name <email>"
    signer: str = ""  # an SSH signature's principal (else its key's fingerprint), a GPG signature's signer; "" unsigned


@dataclass(frozen=True)
class Authorship:
    """Who shaped what a promotion brings to an environment (`Provenance.authors`)."""

    touches: list[Touch]  # each commit once, newest first (app by app for a release set)
    since: dict[str, str]  # app -> the commit deployed in the environment its range starts after (none: all history)
    unknown: str = ""  # why `touches` is not the whole range ("": it is); the policies then deny (fail closed)


HistoryEvent = history.Event  # (in the class, `history` is the method)


class Provenance:
    """Who and what shaped an app's folder on main."""

    def __init__(self, clone: Clone, trusted: TrustedRules, reading: GitOpsReader) -> None:
        self.clone = clone
        self.trusted = trusted
        self.reading = reading

    def history(self, app: str) -> list[HistoryEvent]:
        """The app's promotions, reverts and lifted holds per environment, newest first, read from
        main's commits alone (see promoter.history)."""
        check(app, "app")
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        merges = self._merges(repo, main, app)
        claims, position, merged_by = self._lift_claims(repo, main)
        signers = self.trusted.promoter_signers(repo, main) if claims else ("", "")
        lifts = [  # only those that lift a hold: promoter's signed commits (promoter.holds)
            {"sha": p[0], "at": p[1], "message": p[2]}
            for p in claims
            if holds.is_lift(p[2]) and self.trusted.signed_by_promoter(repo, p[0], signers)
        ]
        for m in merges:
            m["rank"] = str(position(m["sha"]))
        for r in lifts:
            landed = merged_by.get(r["sha"], r["sha"])
            r["rank"], r["sha"] = str(position(landed)), landed
        events = history.events(app, merges, lifts)
        self._verify_approvals(repo, main, app, events, {m["sha"]: (m["message"], m["parent"]) for m in merges})
        return events

    def _lift_claims(self, repo: git.Repo, main: str) -> tuple[list[list[str]], Callable[[str], int], dict[str, str]]:
        """The commits of main claiming to lift a hold ([sha, at, message]), a commit's rank on main's first-
        parent line (0: newest; main's order, not the clock's), the first-parent commit that took each in."""
        indexed = main_index.of(self.clone).at(repo, main)
        found = indexed.records(main_index.LIFT_LINE)

        def rank(sha: str) -> int:
            at = indexed.rank(sha)
            return at if at is not None else indexed.top + 1

        return [[r["sha"], r["at"], r["message"]] for r in found], rank, {r["sha"]: r["landed"] for r in found}

    def _merges(self, repo: git.Repo, main: str, app: str, env: str | None = None) -> list[dict[str, str]]:
        """The merges of main's first-parent line that touch the app's folder (of `env`, else of any),
        newest first: sha, second parent, time, message, `branch_message` (its branch commit's). From the
        index, only the promotions' and reverts' merges naming the app (all promoter.history reads)."""
        indexed = main_index.of(self.clone).at(repo, main)
        keys = [app_folder(env, app)] if env else indexed.app_keys(app)
        merges = [m for m in indexed.merges(app) if indexed.changes(m["sha"], keys)]
        messages = self.clone.messages(repo, [m["sha"] for m in merges])
        for m in merges:
            m["message"] = messages.get(m["sha"], "")
        branches = self.clone.messages(repo, [m["parent"] for m in merges if m["parent"]])
        for m in merges:
            m["branch_message"] = branches.get(m["parent"], "")
        return merges

    def _verify_approvals(
        self, repo: git.Repo, main: str, app: str, events: list[HistoryEvent], merges: dict[str, tuple[str, str]]
    ) -> None:
        """Each promotion's approvals, verified again from Git alone (promoter.proofs): against the
        trust/ of the revision its merge names, which must be on main before that merge."""
        revoked_now = self.trusted.read_trust(repo, main).revoked_keys
        trusts: dict[tuple[str, str], proofs.TrustAt] = {}
        for event in events:
            if event.kind != "promoted":
                continue
            message, head = merges.get(event.main_commit, ("", ""))
            fields = holds.parse_trailers(message)
            rev = dict(fields).get(history.TRUST, "")
            if (rev, event.main_commit) not in trusts:
                trusts[rev, event.main_commit] = self._trust_at(repo, rev, event.main_commit, revoked_now)
            merge = event.main_commit

            def trees(folders: list[str], at: str = merge) -> dict[str, str]:
                return self.reading.folder_trees(at, folders)

            event.approvals = proofs.check(event, fields, app, trusts[rev, merge], trees, head)

    def _trust_at(self, repo: git.Repo, rev: str, merge: str, revoked_now: str) -> proofs.TrustAt:
        if not rev:
            return proofs.TrustAt(None, f"the merge names no {history.TRUST} revision to verify against")
        sha = objects.rev(repo, rev) if len(rev) == 40 else None
        if sha is None or not self.clone.is_ancestor(repo, sha, f"{merge}^1"):  # main before it, not the PR branch
            return proofs.TrustAt(None, f"{history.TRUST} {rev[:12]} is not a commit of main before this merge")
        if self.trusted.trust_root is not None and self.clone.is_ancestor(repo, self.trusted.trust_root, sha):
            if self.trusted.rules(sha).commit != sha:  # a revision whose trust/ nobody trusted verifies nothing
                return proofs.TrustAt(None, f"{history.TRUST} {rev[:12]} is not a trusted rules revision")
        return proofs.TrustAt(self.trusted.read_trust(repo, sha), revoked_now=revoked_now)

    def authors(
        self, commit: str, env: str, apps: Sequence[str], head: str | None = None, limit: int = MAX_AUTHOR_COMMITS
    ) -> Authorship:
        """Everyone who shaped what promoting `commit` brings to `env`: the authors, committers and
        signers of every commit of the promoted range that touched one of the apps' folders (any
        `environments/<env>/<app>`, whichever environment: each could have shaped the promoted content).

        A commit touched a folder when it changed it against any of its parents (`--full-history`: a
        merge that only takes one side's folder still counts, and no side branch is skipped). SSH
        signatures are verified against `trust/allowed_signers` on main, so a known key gives its
        principal, any other its fingerprint. More than `limit` commits: `unknown` says so and the
        policies deny (fail closed), never a silently shortened list. With `head` (the stage's PR head),
        every commit pushed onto the PR's branch counts too, whatever it touched: a person who pushed
        onto the PR shaped what will merge."""
        check(env, "environment")
        for app in apps:
            check(app, "app")
        repo = self.clone.have(head) if head else self.clone.fresh()
        main = self.clone.main(repo)
        sha = objects.rev(repo, commit)
        if sha is None:
            raise NotFound(f"commit {commit[:12]} not found in {self.clone.url}")
        commit = sha
        since = {app: d for app in apps if (d := self._deployed(repo, main, app, env, commit)) is not None}
        touches: dict[str, Touch] = {}
        with tempfile.TemporaryDirectory(prefix="promoter-signers-") as tmp:
            signers = Path(tmp) / "allowed_signers"
            rules = self.trusted.rules(main).commit
            signers.write_text(self._allowed_signers(repo, rules))  # empty: git still names a key
            ranges: list[tuple[list[str], str]] = [
                ([commit, *([f"^{since[app]}"] if app in since else [])], app) for app in apps
            ]
            if head:  # the PR's own commits, on top of main
                ranges.append(([head, f"^{main}"], ""))
            for revs, app in ranges:
                records = self._people(repo, main, signers, limit, revs, app)
                if records is None:
                    return Authorship([], since, UNREADABLE_PEOPLE)
                for record in records:
                    touch = _touch(record)
                    if isinstance(touch, str):
                        return Authorship(list(touches.values()), since, touch)
                    touches.setdefault(touch.commit, touch)
                    if len(touches) > limit:
                        return Authorship(
                            [], since, f"the promoted range holds more than {limit:,} commits that touched its folders"
                        )
        return Authorship(list(touches.values()), since)

    def _people(
        self, repo: git.Repo, main: str, signers: Path, limit: int, revs: list[str], app: str
    ) -> list[str] | None:
        """`git log --format=_PEOPLE` of `revs` (with `app`: the commits that changed its folder in any
        environment against any of their parents, `--full-history`, picked by the index when it knows
        them all), signatures checked against `signers`, people unmapped (no .mailmap), up to `limit + 1`:
        a record per commit, or None when they are not exactly git's own commits (a name holding the
        separators would start a made-up record: another commit's authors and signer)."""
        picked = _touched(self.clone, repo, main, revs, app) if app else None
        if picked is not None and not picked:
            return []
        selection = (
            ["--no-walk=unsorted", "--stdin"]
            if picked is not None
            else ["--full-history", *revs, *(["--", f":(glob){ENVIRONMENTS}/*/{app}/**"] if app else [])]
        )
        with tempfile.TemporaryFile() as stdin:
            stdin.write("".join(f"{sha}\n" for sha in (picked or [])[: limit + 1]).encode())
            stdin.seek(0)
            out: str = repo.git.execute(
                [
                    "git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "--no-use-mailmap",
                    "--no-show-signature", f"--max-count={limit + 1}", f"--format={_PEOPLE}", *selection,
                ],
                env=self.clone.identity,
                istream=stdin,
            )  # fmt: skip
        records = [record.lstrip("\n") for record in out.split("\x1e") if record.strip()]
        paths = ["--", f":(glob){ENVIRONMENTS}/*/{app}/**"] if app else []
        expected = (
            picked[: limit + 1]
            if picked is not None
            else self.clone.run(repo, "rev-list", "--full-history", f"--max-count={limit + 1}", *revs, *paths).split()
        )
        return records if [record.partition("\x1f")[0] for record in records] == expected else None

    def _deployed(self, repo: git.Repo, main: str, app: str, env: str, commit: str) -> str | None:
        """The commit deployed in `env` that `commit`'s range starts after (None: all history).

        Chosen: the newest commit promoter promoted into `env` for `app` (a merge of main's
        first-parent line whose message carries `Promoter-Promotion`, its second parent's
        `Promoted-Commit`), not reverted since, that is an ancestor of `commit`. Why: that content
        passed the gate, so only what came after it is new to the environment. A merge made by hand
        on the forge, a squash merge or a reverted promotion never narrows the range (fail closed:
        more authors, never fewer)."""
        merges, folder = self._merges(repo, main, app, env), app_folder(env, app)
        for rank, m in enumerate(merges):  # newest first, as main's first parents have them
            m["rank"] = str(rank)
        reverted: set[str] = set()
        second_parents = {m["sha"]: m["parent"] for m in merges}
        signers = self.trusted.promoter_signers(repo, main) if self.clone.signing_key is not None else None
        for event in history.events(app, merges, []):
            if event.env != env:
                continue
            if event.kind == "reverted":
                reverted.add(event.commit)
            elif (
                event.promotion
                and objects.SHA.fullmatch(event.commit)
                and event.commit not in reverted
                and objects.rev(repo, event.commit) is not None
                and self.clone.is_ancestor(repo, event.commit, commit)
                # promoter signs its branch commits: a look-alike merge a person pushed narrows nothing
                and (
                    signers is None
                    or self.trusted.branch_signed(repo, second_parents.get(event.main_commit, ""), signers)
                )
                and brings(self.clone, repo, event.main_commit, second_parents.get(event.main_commit, ""), folder)
            ):
                return event.commit
        return None

    def promoted_folder(self, env: str, app: str) -> PromotedFolder:
        """What drift compares `app`'s folder of `env` with and heals it to: the folder as promoter's own
        merge last wrote it, and every commit of main that changed the folder since (unpromoted).

        Read from main's first-parent line, newest first: a merge of a promotion (`Merge pull request #N
        from promote/<app>/<env>/…` carrying `Promoter-Promotion`, or a release set's naming the app) or
        of a revert counts; when promoter signs its commits, only one whose second parent promoter signed
        (a look-alike merge a person pushed counts for nothing). Anything else that changed the folder
        was pushed to main without a gate. Two exceptions: the source environment (the first) takes
        changes by a push, which its promotions then check, so there main's folder is what it has; and an
        app never promoted into `env` is compared with the commit that created its folder (the seed),
        which `promoted: False` marks so that drift reports it and never heals it."""
        check(env, "environment")
        check(app, "app")
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        if self.reading.environments_at(repo, self.trusted.rules(main).commit)[0].config.name == env:
            return PromotedFolder(revision=main, promoted=True)
        folder = app_folder(env, app)
        touched = folder_log(self.clone, repo, main, folder)  # (sha, second parent, author, message), newest first
        merges = [{"sha": sha, "at": "", "message": msg} for sha, second, _, msg in touched if second]
        branches = self.clone.messages(repo, [second for _, second, _, _ in touched if second])
        second_of = {sha: second for sha, second, _, _ in touched}
        for m in merges:
            m["branch_message"] = branches.get(second_of[m["sha"]], "")
        signers = self.trusted.promoter_signers(repo, main) if self.clone.signing_key is not None else None
        ours = {
            event.main_commit
            for event in history.events(app, merges, [])
            if event.env == env
            and (event.kind == "reverted" or event.promotion)
            and (signers is None or self.trusted.branch_signed(repo, second_of.get(event.main_commit, ""), signers))
            and brings(self.clone, repo, event.main_commit, second_of.get(event.main_commit, ""), folder)
        }
        found = judged(touched, ours, main)
        ours_of = (lambda second: True) if signers is None else partial(self._ours, repo, signers)
        found.unhealable = Aside(self.clone, repo, main, ours_of).unhealable(found, env, app)
        return found

    def _ours(self, repo: git.Repo, signers: tuple[str, str], second: str) -> bool:
        return self.trusted.branch_signed(repo, second, signers)

    def _allowed_signers(self, repo: git.Repo, main: str) -> str:
        """`trust/allowed_signers` on main ("" when there is none)."""
        found = self.clone.entry(repo, main, "trust/allowed_signers")
        if found is None or found.mode == TREE:
            return ""
        if repo.odb.info(bytes.fromhex(found.sha)).size > MAX_SIGNERS_BYTES:
            raise BadInput(f"trust/allowed_signers on {MAIN} is larger than {MAX_SIGNERS_BYTES} bytes; list fewer keys")
        return objects.raw(repo, found.sha).decode("utf-8", "replace")

    def unsigned_source(
        self, commit: str, source: str, target: str, apps: Sequence[str], head: str | None = None
    ) -> list[RuleChange]:
        """The commits of the promoted range (after the commit deployed in `target`, and after the trust
        root, which is trusted as it is) that touched an app's folder in `source`, and with `head` (the
        stage's PR head) the commits pushed onto the PR after promoter's own first one, that carry no git
        SSH signature by a key trust/allowed_signers lists for `git` at the trusted rules revision
        (`source.require_signed`, as Flux and Argo CD verify a source's commits)."""
        repo = self.clone.have(head or commit)
        main = self.clone.main(repo)
        trust = self.trusted.read_trust(repo, self.trusted.rules(main).commit)
        since = self.authors(commit, target, apps).since
        found: list[RuleChange] = []
        root = self.trusted.trust_root
        selections = [
            [commit, *(f"^{rev}" for rev in (since.get(app), root) if rev), "--", app_folder(source, app)]
            for app in apps
        ]
        if head:  # the PR's commits but its first, which promoter wrote (signed by its key, when it has one)
            pushed = self.clone.run(repo, "log", "--reverse", "--format=%H", head, f"^{main}").split()
            selections += [[sha, "-1"] for sha in pushed[1:]]
        for selection in selections:
            out = self.clone.run(repo, "log", "--format=%H%x1f%an <%ae>", *selection)
            for line in out.splitlines():
                sha, _, author = line.partition("\x1f")
                try:
                    signing.commit_signer(objects.raw(repo, sha), trust.allowed_signers, trust.revoked_keys)
                except signing.SignatureError as e:
                    found.append(RuleChange(commit=sha, author=author, reason=str(e)))
        return found


def brings(clone: Clone, repo: git.Repo, merge: str, branch: str, folder: str) -> bool:
    """Whether `merge` brings `branch` for the first time and writes `folder` as it does: a signed branch
    commit of an earlier promotion (any pusher can merge one again, naming any app in the message)
    must not make a folder of the pusher's, or an old version, count as promoter's."""
    first = objects.parents(repo, merge)[:1]
    return (
        bool(first and branch)
        and not clone.is_ancestor(repo, branch, first[0])
        and clone.entry(repo, merge, folder) == clone.entry(repo, branch, folder)
    )


UNREADABLE_PEOPLE = (
    "the people of the promoted range cannot be read: git's log of it lists other commits than its own "
    "(a name or an email holding a control character)"
)


def _touch(record: str) -> Touch | str:
    """One commit's people from `git log --format=_PEOPLE`, or why they cannot be read (fail closed)."""
    parts = record.split("\x1f")
    if len(parts) != 8 or not objects.SHA.fullmatch(parts[0]):
        return f"a commit of the promoted range could not be read ({shown(record[:60], 80)})"
    sha, an, ae, cn, ce, status, signer, key = parts
    if status != "N" and not (signer or key):  # signed, but git cannot say by whom (no gpg, no ssh-keygen)
        return f"commit {sha[:7]} is signed, but its signer cannot be read (signature status {status})"
    return Touch(sha, f"{an} <{ae}>", f"{cn} <{ce}>", signer or key if status != "N" else "")


def _touched(clone: Clone, repo: git.Repo, main: str, revs: list[str], app: str) -> list[str] | None:
    """The commits of `revs` that changed `environments/*/<app>` against any of their parents, in
    `git log`'s order; None when the index cannot tell for each of them."""
    indexed = main_index.view(clone, repo, main)
    if indexed is None:
        return None
    listed = clone.run(repo, "rev-list", *revs).split()
    if not all(sha in indexed.data.number for sha in listed):
        return None
    touched = indexed.touching(indexed.app_keys(app))
    return [sha for sha in listed if sha in touched]
