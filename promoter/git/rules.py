"""The trusted rules revision, and the signature checks it rests on: which revision of the rule files
(policies/, trust/, every environment.yaml) judges a promotion on main, `trust/` at a revision, and
whether a commit carries promoter's own signature (the commit that lifts a hold, a promotion branch).

Why a walk from a trust root: a person who can push to main must not be able to loosen the rules that
judge their own promotion; only changes signed by a key the rules before them trust are taken in.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import git

from promoter import breakglass, holds, signing
from promoter.errors import BadInput
from promoter.git import commits, objects
from promoter.git import index as main_index
from promoter.git.clone import Clone
from promoter.git.objects import MAIN, TREE
from promoter.models import RuleChange, RulesRevision, Trust
from promoter.names import ALLOWED_SIGNERS, ENVIRONMENTS, REVOKED_KEYS

RULE_PATHS = ("policies", "trust", f":(glob){ENVIRONMENTS}/*/environment.yaml")  # the rule files, as pathspecs
MAX_UNTRUSTED_SHOWN = 20  # untrusted rule changes named; more are counted (a flood must not fill the plan)
PROMOTER_PRINCIPAL = "promoter"  # the principal of promoter's own commit signing key in trust/allowed_signers
MAX_TRUST_BYTES = 1_000_000  # trust/allowed_signers or trust/revoked_keys: thousands of keys
# a signed rule change that is not made on top of the trusted rules: named even when main's rules are the
# trusted ones (a fresh clone cannot tell which line was main: a signed change it drops is never dropped unseen)
OLDER_RULES = "it changes older rules than the trusted ones; rebase it on main and sign it again"
MARK_FILE = "promoter-trusted"  # beside the clone: the last trusted rules revision found, and its root


def _ambiguous(left: RuleChange) -> str:
    """Why a walk takes no rules: since main as this clone last saw it (nothing, when new or after main was
    rewritten), two lines of changes signed by trusted keys meet on main; a merge pushed with an old
    signed commit as its first parent makes the old line look like main's, and either may be it."""
    return (
        f"main holds signed rules changes on two lines since this clone last saw it, and the one it would "
        f"take leaves out {left.commit[:12]} by {left.author} ({left.reason}), so it cannot tell which rules "
        "are in force: sign a rules change made on top of main, or pin PROMOTER_TRUST_ROOT to a commit of "
        "main whose rules you trust"
    )


def _cut(text: str, limit: int) -> str:
    """One line of at most `limit` characters (an author or a reason that someone else wrote)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _RulesWalk:
    """How far rules() followed main from the trust root: the trusted revision, and what it did not take."""

    root: str
    main: str
    trusted: str
    digest: tuple[str, ...]
    base: str = ""  # the commit that brought the trusted rules in (`trusted` may be a newer name for them)
    untrusted: list[RuleChange] = field(default_factory=list)
    more: int = 0
    # this call's: the base it began from, trust/'s trees it took in (-> a revision with each), and the
    # changes signed by a key one of those trusted that it did not take (`_signed_elsewhere`)
    start: str = ""
    vouchers: dict[str, str] = field(default_factory=dict)
    left_out: list[RuleChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base = self.base or self.trusted

    def copy(self) -> _RulesWalk:
        """What this walk reached, to go on from."""
        return dataclasses.replace(self, untrusted=list(self.untrusted), start="", vouchers={}, left_out=[])


class _Mark:
    """The last trusted revision a clone found from a root, and the commit that brought its rules in,
    kept beside it (`.git/promoter-trusted`), so that a new process goes on from it as this one would."""

    def __init__(self, clone: Clone) -> None:
        self.clone = clone

    def read(self, root: str) -> tuple[str, str]:
        """(the revision, its base); ("", "") when there is none for `root`."""
        try:
            marked_root, mark, base = (self.clone.path / ".git" / MARK_FILE).read_text().split()
        except (OSError, ValueError):  # none, or written before the base was kept (which it cannot tell)
            return "", ""
        if marked_root != root or not all(objects.SHA.fullmatch(sha) for sha in (mark, base)):
            return "", ""
        return mark, base

    def save(self, repo: git.Repo, walk: _RulesWalk) -> None:
        """Keep `walk.trusted` as the mark, over a mark it reaches on from or one main no longer reaches."""
        mark, _ = self.read(walk.root)
        if mark == walk.trusted:
            return
        if (
            not mark
            or self.clone.is_ancestor(repo, mark, walk.trusted)
            or not self.clone.is_ancestor(repo, mark, walk.main)
        ):
            path = self.clone.path / ".git" / MARK_FILE
            tmp = path.with_name(f"{MARK_FILE}.{threading.get_ident()}.tmp")
            tmp.write_text(f"{walk.root} {walk.trusted} {walk.base}\n")
            tmp.replace(path)


class TrustedRules:
    """The rules revision that judges main, and `trust/` as a revision has it."""

    def __init__(self, clone: Clone, trust_root: str | None = None) -> None:
        self.clone = clone
        self.trust_root = trust_root  # None: main's rule files are used as they stand (see rules())
        self.mark = _Mark(clone)
        self._rules: dict[str, RulesRevision] = {}  # main's commit -> its trusted rules revision
        self._walks: list[_RulesWalk] = []  # where rules() reached on recent mains, to go on from
        self._trusts: dict[str, Trust] = {}  # trust/ at a few trusted revisions

    def rules(self, main: str | None = None) -> RulesRevision:
        """The revision of the rule files that judges a promotion on `main` (as it is now by default):
        from the trust root (`PROMOTER_TRUST_ROOT`), main's first-parent commits that change a rule file
        (policies/, trust/, any environment.yaml) are followed while each is trusted: a commit whose rules
        are the trusted ones already, one signed by a key that trust/allowed_signers *of the trusted
        revision before it* lists for `git` (as `git verify-commit` checks it; never a key listed for the
        principal `promoter`, which signs promoter's own merges), or a merge whose second parent is such a
        signed commit made on top of the trusted revision, with the same rules. An untrusted change is not
        used, and is reported. Without a trust root, main's rule files are used as they stand
        (RulesRevision.root is None). The walk goes on from the last main it reached, so a new commit on
        main costs what it changed, not the whole history since the root."""
        repo = self.clone.have(main)
        current = self.clone.main(repo)
        main = main or current
        cached = self._rules.get(main)
        if cached is not None:
            return cached
        if self.trust_root is None:  # the rules are main's, named by the last commit that changed them
            return self._remember(main, RulesRevision(commit=self._last_change(repo, main) or main))
        root = objects.rev(repo, self.trust_root)
        if root is None or not self.clone.is_ancestor(repo, root, main):
            raise BadInput(
                f"the trust root {self.trust_root[:12]} (PROMOTER_TRUST_ROOT) is not a commit of {MAIN} in "
                f"{self.clone.url}; pin a commit of {MAIN} whose rule files you trust"
            )
        walk = self._walk_from(repo, root, main)
        walk.start, walk.vouchers = walk.base, {self._trust_tree(repo, walk.base): walk.base}
        self._follow(repo, walk, main)
        walk.main = main
        unsettled = [c for c in walk.left_out if not self.clone.is_ancestor(repo, c.commit, walk.base)]
        if unsettled:
            raise BadInput(_ambiguous(unsettled[0]))
        if main == current:  # an older main asked (a branch's base, a merge's trust revision) moves nothing on
            self.mark.save(repo, walk)
            self._walks = [*self._walks[-7:], walk.copy()]
        undone = self._rules_digest(repo, main) == walk.digest  # what was changed unsigned has been changed back
        return self._remember(
            main,
            RulesRevision(
                commit=walk.trusted,
                root=root,
                untrusted=[c for c in walk.untrusted if c.reason == OLDER_RULES] if undone else list(walk.untrusted),
                more_untrusted=0 if undone else walk.more,
            ),
        )

    def trust(self, rev: str) -> Trust:
        """`trust/allowed_signers` and `trust/revoked_keys` at `rev` (a commit of main)."""
        return self.read_trust(self.clone.have(rev), rev)

    def read_trust(self, repo: git.Repo, rev: str) -> Trust:
        texts: dict[str, str] = {}
        for name in (ALLOWED_SIGNERS, REVOKED_KEYS):
            found = self.clone.entry(repo, rev, name)
            if (
                found is not None
                and found.mode != TREE
                and repo.odb.info(bytes.fromhex(found.sha)).size > MAX_TRUST_BYTES
            ):
                raise BadInput(f"{name} at {rev[:12]} is larger than {MAX_TRUST_BYTES} bytes; list fewer keys")
            texts[name] = self.clone.show(repo, rev, name) or ""
        return Trust(
            revision=objects.rev(repo, rev) or rev,
            allowed_signers=texts[ALLOWED_SIGNERS],
            revoked_keys=texts[REVOKED_KEYS],
        )

    def _last_change(self, repo: git.Repo, main: str) -> str:
        """The newest commit of main's first-parent line that changed a rule file ("" when none did),
        from the index of main's records, else from git."""
        indexed = main_index.view(self.clone, repo, main)
        if indexed is not None:
            changed = indexed.changed(indexed.rule_keys())
            return indexed.sha(changed[-1]) if changed else ""
        return self.clone.run(repo, "log", "-1", "--first-parent", "--format=%H", main, "--", *RULE_PATHS).strip()

    def _rule_changes(
        self, repo: git.Repo, since: str, main: str
    ) -> tuple[list[tuple[str, bool]], Callable[[str], bool]]:
        """(commit, whether it is on main's first-parent line) of the commits of `since..main` that change
        a rule file against any of their parents, parents before children: the commits a merge brings
        come before the merge. `git log --first-parent` alone would let a pushed merge whose first parent
        is older than the main it follows (`commit-tree P^{tree} -p P -p main`, a fast-forward) hide the
        signed rule changes main had since P, and undo them by taking P's rules back. And whether a
        commit is `since` or after it on main's first-parent line (its rules were followed)."""
        indexed = main_index.view(self.clone, repo, main)
        rank = indexed.rank(since) if indexed is not None else None
        if indexed is not None and rank is not None:
            touching = indexed.touching(indexed.rule_keys())
            ranks = {sha: indexed.rank(sha) for sha in touching}

            def followed(sha: str) -> bool:
                return (r := indexed.rank(sha)) is not None and r <= rank

            if all(r is not None for r in ranks.values()):  # nothing merged in changed a rule: main's own order
                by_rank = sorted(ranks.items(), key=lambda x: -(x[1] or 0))
                return [(sha, True) for sha, r in by_rank if (r or 0) < rank], followed
            order = self.clone.run(repo, "rev-list", "--topo-order", "--reverse", f"{since}..{main}").split()
            return [(sha, ranks[sha] is not None) for sha in order if sha in touching], followed
        found = self.clone.run(
            repo, "rev-list", "--full-history", "--topo-order", "--reverse", f"{since}..{main}", "--", *RULE_PATHS
        ).split()
        line = {since, *self.clone.run(repo, "rev-list", "--first-parent", f"{since}..{main}").split()}
        return [(sha, sha in line) for sha in found], line.__contains__

    def _follow(self, repo: git.Repo, walk: _RulesWalk, main: str) -> None:
        """Take `walk` along the commits after it that change a rule file, up to `main` (see _rule_changes):
        each one whose rules are the trusted ones already, or that a trusted key vouches for, becomes the
        trusted revision (taking in all before it); any other is an untrusted change, named or counted. A
        commit that a merge brings is taken in only when made on top of the trusted revision (a signed
        change to older rules would drop what was signed since), and a merge whose rules are its first
        parent's is judged when what it brings changed a rule (it must not undo that by keeping them)."""
        brought = False  # a commit off main's first-parent line changed a rule since the last one on it
        changes, followed = self._rule_changes(repo, since=walk.main, main=main)
        for commit, on_line in changes:
            here = self._rules_digest(repo, commit)
            first = objects.parents(repo, commit)[:1] if on_line and not brought and here != walk.digest else []
            if first and followed(first[0]) and here == self._rules_digest(repo, first[0]):
                continue  # the rules of the commit before it on main, already followed (a stale branch's merge)
            brought = not on_line
            if here == walk.digest:  # the same rules: a newer name for them, when made on them
                if on_line and self.clone.is_ancestor(repo, walk.base, commit):
                    walk.trusted = commit
                continue
            reason = self._vouched(repo, commit, walk.trusted, here, walk.base)
            if reason is None and not self.clone.is_ancestor(repo, walk.base, commit):  # on the line, too:
                # a merge pushed with an older signed commit as its first parent puts it on main's line
                reason = OLDER_RULES
            if reason is None:  # took in all before it
                walk.trusted = walk.base = commit
                walk.digest, walk.untrusted, walk.more = here, [], 0
                walk.vouchers.setdefault(self._trust_tree(repo, commit), commit)
                continue
            change = RuleChange(commit=commit, author=_cut(commits.author(repo, commit), 120), reason=_cut(reason, 300))
            if self._signed_elsewhere(repo, walk, commit, reason):
                walk.left_out.append(change)
            if len(walk.untrusted) < MAX_UNTRUSTED_SHOWN:
                walk.untrusted.append(change)
            else:
                walk.more += 1

    def _remember(self, main: str, found: RulesRevision) -> RulesRevision:
        self._rules = {**dict(list(self._rules.items())[-15:]), main: found}  # a few recent mains
        return found

    def _walk_from(self, repo: git.Repo, root: str, main: str) -> _RulesWalk:
        """Where to go on following main from: the newest earlier walk whose main `main` reaches, else the
        last trusted revision this clone found (`_Mark`) when `main` reaches it, else the trust root. Going
        on from what was seen, whatever main's first-parent line now says, is what keeps a merge pushed
        with an older first parent (a fast-forward that puts an old line, or an old signed commit, on
        main's line) from undoing the signed changes since: they were taken in, and the commits after
        them are judged against them. A main that reaches none of them was force-pushed: from the root."""
        for walk in reversed(self._walks):
            if walk.root == root and self.clone.is_ancestor(repo, walk.main, main):
                return walk.copy()
        mark, base = self.mark.read(root)
        if mark and objects.rev(repo, mark) is not None and self.clone.is_ancestor(repo, mark, main):
            base = base if objects.rev(repo, base) is not None else mark
            return _RulesWalk(root=root, main=mark, trusted=mark, digest=self._rules_digest(repo, mark), base=base)
        return _RulesWalk(root=root, main=root, trusted=root, digest=self._rules_digest(repo, root))

    def _trust_tree(self, repo: git.Repo, commit: str) -> str:
        found = self.clone.entry(repo, commit, "trust")
        return found.sha if found is not None else ""

    def _signed_elsewhere(self, repo: git.Repo, walk: _RulesWalk, commit: str, reason: str) -> bool:
        """Whether a rule change the walk did not take is signed by a key that rules it took in trusted
        (today's: made on older rules; an earlier trust/'s: a line whose trust/ went another way), made
        on the rules this clone had taken before (`walk.start`; one made on older ones is settled by what
        it took). An unsigned change, or one that itself adds a break-glass, is no one's signed rules."""
        if reason == "unsigned" or not self.clone.is_ancestor(repo, walk.start, commit):
            return False
        if reason == OLDER_RULES:
            return True
        if self._adds_break_glass(repo, objects.parents(repo, commit)[0], commit):
            return False
        return any(
            self._signed_by_rules_key(repo, commit, self._trust_cached(repo, rev)) is None
            for rev in walk.vouchers.values()
        )

    def _rules_digest(self, repo: git.Repo, commit: str) -> tuple[str, ...]:
        """The rule files at `commit`, as the ids of their trees and blobs."""
        parts = []
        for path in ("policies", "trust"):
            found = self.clone.entry(repo, commit, path)
            parts.append(found.sha if found is not None else "")
        for name in self.clone.folders(repo, commit, ENVIRONMENTS):
            found = self.clone.entry(repo, commit, f"{ENVIRONMENTS}/{name}/environment.yaml")
            parts.append(f"{name}:{found.sha if found is not None else ''}")
        return tuple(parts)

    def _vouched(self, repo: git.Repo, commit: str, trusted: str, digest: tuple[str, ...], base: str) -> str | None:
        """None when a key trusted at `trusted` vouches for `commit`'s rules (a merge's second parent: made
        on `base`, which brought them in); else why not (one phrase)."""
        trust = self._trust_cached(repo, trusted)
        if self._adds_break_glass(repo, trusted, commit):  # whoever signed it: only promoter's seal counts
            if self._break_glass(repo, commit, trusted, trust):
                return None
            return "it adds or changes a break-glass, which only promoter writes after the break-glass's own gate"
        reason = self._signed_by_rules_key(repo, commit, trust)
        if reason is None:
            return None
        parents = objects.raw(repo, commit).split(b"\n\n", 1)[0].split(b"\n")
        second = [line.split()[1].decode() for line in parents if line.startswith(b"parent ")][1:2]
        if (
            second
            and self._rules_digest(repo, second[0]) == digest  # a merge that brings exactly a signed change
            and self.clone.is_ancestor(repo, base, second[0])  # made on today's rules, never old ones
            and self._signed_by_rules_key(repo, second[0], trust) is None
        ):
            return None
        return reason

    def _adds_break_glass(self, repo: git.Repo, trusted: str, commit: str) -> bool:
        """Whether `commit` adds or changes a file under trust/break-glass/ against the trusted rules (a
        removal, of one that ended, is an ordinary rules change)."""
        changed = self.clone.run(
            repo, "diff", "--name-only", "--no-renames", "--diff-filter=AMT", trusted, commit, "--", breakglass.FOLDER
        )
        return bool(changed.strip())

    def _break_glass(self, repo: git.Repo, commit: str, trusted: str, trust: Trust) -> bool:
        """Whether `commit` (or the second parent it merges) is a break-glass promoter put in place after
        its PR's own gate approved (promoter.breakglass): signed by a key the trusted trust/ lists for
        `promoter`, its trailer block naming the break-glass, and adding exactly that one file under
        trust/break-glass/ to the trusted rules, nothing else of the rule files."""
        parents = objects.parents(repo, commit)
        sealed = parents[1] if len(parents) > 1 else commit
        gid = breakglass.sealed(objects.commit_message(repo, sealed))
        if gid is None:
            return False
        changed = self.clone.run(repo, "diff", "--name-status", "--no-renames", trusted, commit, "--", *RULE_PATHS)
        if changed.splitlines() != [f"A\t{breakglass.path(gid)}"]:
            return False
        if sealed != commit and self.clone.run(repo, "diff", "--name-only", sealed, commit, "--", *RULE_PATHS).strip():
            return False  # the merge brings exactly the sealed commit's rules
        signers = (holds.promoter_signers(trust.allowed_signers), trust.revoked_keys)
        return self.signed_by_promoter(repo, sealed, signers)

    def _trust_cached(self, repo: git.Repo, rev: str) -> Trust:
        found = self._trusts.get(rev)
        if found is None:
            found = self.read_trust(repo, rev)
            self._trusts = {**dict(list(self._trusts.items())[-7:]), rev: found}
        return found

    def _signed_by_rules_key(self, repo: git.Repo, commit: str, trust: Trust) -> str | None:
        try:
            signer = signing.commit_signer(objects.raw(repo, commit), trust.allowed_signers, trust.revoked_keys)
            promoters = [
                s for s in signing.parse_allowed_signers(trust.allowed_signers) if PROMOTER_PRINCIPAL in s.principals
            ]
        except signing.SignatureError as e:
            return "unsigned" if "not signed" in str(e) else str(e)
        if any(signing.fingerprint(s.key_blob) == signer.fingerprint for s in promoters):
            return "signed by promoter's own key, which signs its merges, never rule changes"
        return None

    def promoter_signers(self, repo: git.Repo, main: str) -> tuple[str, str]:
        """(allowed signers of the principal `promoter`, revoked keys), from trust/ as the trusted rules
        revision of `main` has it: a key a person lists for `promoter` in an unsigned change of trust/
        does not count."""
        trust = self.read_trust(repo, self.rules(main).commit)
        return holds.promoter_signers(trust.allowed_signers), trust.revoked_keys

    def signed_by_promoter(self, repo: git.Repo, commit: str, signers: tuple[str, str]) -> bool:
        """Whether `commit` carries a valid signature by a key listed for `promoter` (as git verify-commit)."""
        try:
            signing.commit_signer(objects.raw(repo, commit), *signers)
        except BadInput:  # SignatureError: unsigned, another key, revoked; or a trust file that does not parse
            return False
        return True

    def branch_signed(self, repo: git.Repo, commit: str, signers: tuple[str, str]) -> bool:
        return bool(objects.SHA.fullmatch(commit)) and self.signed_by_promoter(repo, commit, signers)
