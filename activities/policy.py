"""Policy activities: render the target's objects after the change, build the input, decide.

Rendering or policy problems are denials that name their cause (fail closed); only a repository that
cannot be reached is left to retry.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity

from activities import classified
from activities.findings import (
    SourceGit,
    claim_denials,
    combined,
    crds_in,
    input_error,
    left_behind,
    local_file_advisories,
    namespace_denials,
    outside_denials,
    unsigned_denials,
)
from promoter import breakglass, signing
from promoter.cluster import Claim
from promoter.errors import PromoterError, TemporaryError
from promoter.forges import CommitLogins, Forge
from promoter.git.provenance import Authorship
from promoter.models import (
    Approval,
    ApprovalCheck,
    ChangeCheck,
    ClusterConfig,
    PolicyCheckInput,
    PolicyDecision,
    PolicyViolation,
    PrepareInput,
    PrepareResult,
    RulesRevision,
    ScreenInput,
    ScreenResult,
    Trust,
)
from promoter.names import app_folder, check
from promoter.policy import (
    PolicyBundle,
    PolicyEngine,
    authors_input,
    build_input,
    clean_error,
    decide,
    schema_input,
)
from promoter.render import render_files


class PolicyGit(SourceGit, Protocol):
    """What the policy activities need of the git side (promoter.git.ports): the rules and trust of
    main, the policies' files, a stage's change (prepared, its files, its tree), the folders it
    renders from, and who shaped the promoted range."""

    def rules(self, main: str | None = None) -> RulesRevision: ...
    def trust(self, rev: str) -> Trust: ...
    def policy_revision(self, base: str | None = None) -> tuple[str, str]: ...
    def policy_files(self, commit: str | None = None) -> tuple[str, dict[str, str]]: ...
    def prepare(self, req: PrepareInput) -> PrepareResult: ...
    def change_files(self, req: PrepareInput, base: str | None = None) -> dict[str, bytes]: ...
    def export_change(self, req: PrepareInput, dest: Path, base: str | None = None) -> Path: ...
    def export_tree(self, rev: str, dest: Path) -> None: ...
    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]: ...
    def authors(self, commit: str, env: str, apps: Sequence[str], head: str | None = None) -> Authorship: ...


class PolicyActivities:
    def __init__(
        self,
        repo: PolicyGit,
        engine: PolicyEngine,
        cluster_crds: Callable[[ClusterConfig], list[dict[str, Any]]] | None = None,
        forge: Forge | None = None,
        claims: Callable[[ClusterConfig, str, list[dict[str, Any]]], list[Claim]] | None = None,
    ) -> None:
        self.repo = repo
        self.engine = engine
        self.cluster_crds = cluster_crds  # the target cluster's CRDs, for custom resources the repository has none for
        self.claims = claims  # what another app owns in the target cluster (KubeCluster.claims), asked before the PR
        # the accounts the forge ties to a commit, when it can tell (promotion.authors)
        self.logins = forge if isinstance(forge, CommitLogins) else None
        self._bundles: dict[str, PolicyBundle] = {}
        self._crds: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (main, env) → its folder's CRDs
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Compile main's policies now (the worker calls it as it starts), so that the first
        promotion does not pay for a cold engine."""
        self.engine.warm(self.bundle())

    def bundle(self, base: str | None = None) -> PolicyBundle:
        """policies/ on main (at `base`, or as it is now), parsed once per tree id (the policy revision)."""
        return self._bundle(base)[0]

    def _bundle(self, base: str | None) -> tuple[PolicyBundle, str]:
        """(the bundle of the trusted rules revision, the commit of main it was read for). The bundle
        names that revision's commit, which the decision, the audit and the merge trailers carry."""
        tree, main = self.repo.policy_revision(base)
        trusted = self.repo.rules(main).commit
        key = f"{tree}@{trusted}"
        with self._lock:
            if key in self._bundles:
                return self._bundles[key], main
        _, files = self.repo.policy_files(trusted)
        glass = self.repo.folder_files(trusted, breakglass.FOLDER)  # trust/break-glass/ at the same revision
        texts = {p: t.decode("utf-8", "replace") for p, t in glass.items()}
        with self._lock:
            if key not in self._bundles:  # keep only the newest revision
                bundle = PolicyBundle.from_files(files, texts)
                self._bundles = {key: dataclasses.replace(bundle, commit=trusted)}
            return self._bundles[key], main

    def objects(self, req: PolicyCheckInput, base: str | None = None) -> list[dict[str, Any]]:
        folder = app_folder(req.target_env, req.app)
        if req.head:  # what the PR would merge, including commits pushed onto it since it was opened

            def tree(tmp: Path) -> Path:
                assert req.head is not None
                self.repo.export_tree(req.head, tmp)
                return tmp / folder

            return render_files(self.repo.folder_files(req.head, folder), folder, tree)
        change = req.change()
        return render_files(
            self.repo.change_files(change, base), folder, lambda tmp: self.repo.export_change(change, tmp, base)
        )

    def evaluate(
        self, req: PolicyCheckInput, base: str | None = None, authors: dict[str, Any] | None = None
    ) -> PolicyDecision:
        """`judge`, and before a merge what the PR's head changes outside the app folders (a release
        set's: every member's)."""
        decision = self.judge(req, base, authors)
        try:
            outside = self._outside(req)
        except PromoterError as e:
            return self._input_error(e)
        if outside:
            decision = decision.model_copy(update={"allow": False, "deny": [*decision.deny, *outside]})
        return decision

    def judge(
        self, req: PolicyCheckInput, base: str | None = None, authors: dict[str, Any] | None = None
    ) -> PolicyDecision:
        """The decision on `req`, with main (its policies and the target's folder) at `base`, or as it is now.
        A release set's is one decision over its members: each judged as its app (its objects, its
        exceptions), every finding kept once; it allows only when every member is allowed. `authors`:
        the promoted range's (`authors`), read here when the input carries approvals to judge."""
        if req.members:
            if base is None:
                try:
                    base = self._bundle(None)[1]  # one fetch of main serves every member
                except PromoterError:
                    pass  # each member's evaluation denies, naming it
            if authors is None and req.approvals:
                try:  # the set's range: every member's folders, judged alike for each member
                    authors = self.authors(req)
                except PromoterError as e:
                    return self._input_error(e)
            return combined(
                [self.judge(req.model_copy(update={"app": m, "members": []}), base, authors) for m in req.members]
            )
        try:
            for name, what in ((req.app, "app"), (req.source_env, "environment"), (req.target_env, "environment")):
                check(name, what)
            bundle, main = self._bundle(base)  # one fetch of main serves the policies and the change
            if authors is None and req.approvals:
                authors = self.authors(req)
            objects = self.objects(req, main) if req.render_objects else []
            found = schema_input(req.environment, objects, self._more_crds(req, main)) if req.render_objects else None
            unsigned = self._unsigned_source(req)
        except PromoterError as e:
            return self._input_error(e)
        decision = decide(self.engine, bundle, build_input(req, objects, found, authors))
        if unsigned:
            decision = decision.model_copy(update={"allow": False, "deny": [*decision.deny, *unsigned]})
        if objects and req.phase in ("pre_pr", "merge") and req.environment.cluster.sync == "native":
            denied, warned = self._ownership(req, objects)
            decision = decision.model_copy(
                update={
                    "allow": decision.allow and not denied,
                    "deny": [*decision.deny, *denied],
                    "warn": [*decision.warn, *warned],
                }
            )
        if objects and req.phase == "pre_pr":  # advisory: a needed ConfigMap or Secret left behind in the source
            advisories = local_file_advisories(req, objects, self._left_behind(req))
            decision = decision.model_copy(update={"warn": [*decision.warn, *advisories]})
        return decision

    def _left_behind(self, req: PolicyCheckInput) -> set[tuple[str, str]]:
        """What the source's local files define (`left_behind`); nothing when no file is local."""
        if not req.environment.local_files or req.target_env == req.source_env:
            return set()
        try:
            return left_behind(req, self.repo.folder_files(req.commit, app_folder(req.source_env, req.app)))
        except PromoterError:
            return set()  # an unreadable source is the change's own denial

    def _ownership(
        self, req: PolicyCheckInput, objects: list[dict[str, Any]]
    ) -> tuple[list[PolicyViolation], list[PolicyViolation]]:
        """(denials, warnings) on what the app may write to the target cluster: only the namespaces
        the environment gives it (`cluster.namespace` and `apps.<app>.namespaces`), and no object
        another app owns, nor an existing one no app owns unless `cluster.adopt` (docs/clusters.md,
        "Ownership and the inventory"). Sync refuses the same objects again."""
        denied = namespace_denials(req, objects)
        if self.claims is None:
            return denied, []
        return denied + claim_denials(self.claims, req, objects), []

    def _outside(self, req: PolicyCheckInput) -> list[PolicyViolation]:
        return outside_denials(self.repo, req)

    def _unsigned_source(self, req: PolicyCheckInput) -> list[PolicyViolation]:
        return unsigned_denials(self.repo, req)

    def _input_error(self, e: PromoterError) -> PolicyDecision:
        return input_error(self.engine.name, e)

    def authors(self, req: PolicyCheckInput) -> dict[str, Any]:
        """`promotion.authors` (`authors_input`): the authors, committers and signers of every commit
        that shaped what `req` promotes into its target (`PolicyGit.authors`), and the accounts the
        forge ties to those commits. A forge that cannot answer raises (the check is retried, then
        refused): a login is never silently left out."""
        found = self.repo.authors(req.commit, req.target_env, req.members or [req.app], head=req.pr_head)
        people: list[tuple[str, str, str]] = []
        for touch in found.touches:
            people += [(touch.author, "authored", touch.commit), (touch.committer, "committed", touch.commit)]
            if touch.signer:
                people.append((touch.signer, "signed", touch.commit))
            if self.logins is not None:
                people += [
                    (login, "authored or committed", touch.commit) for login in self.logins.commit_logins(touch.commit)
                ]
        return authors_input(people, found.unknown)

    def _more_crds(self, req: PolicyCheckInput, main: str) -> Callable[[], tuple[list[dict[str, Any]], str]]:
        """The CRDs of the target environment's folder on main (read once per commit of main), then
        the target cluster's: asked only for a custom resource whose CRD the app does not carry."""

        def lookup() -> tuple[list[dict[str, Any]], str]:
            key = (main, req.target_env)
            with self._lock:
                known = self._crds.get(key)
            if known is None:
                folder = f"environments/{req.target_env}"
                files = self.repo.folder_files(main, folder)
                known = crds_in(
                    {path: text for path, text in files.items() if path.endswith((".yaml", ".yml"))},
                    lambda path: f"{folder}/{path}",
                )
                with self._lock:
                    self._crds = {key: known}  # keep only the newest commit's
            if self.cluster_crds is None:
                return known, ""
            try:
                return known + self.cluster_crds(req.environment.cluster), ""
            except (PromoterError, TemporaryError) as e:  # said in the finding: the gate does not wait for a cluster
                return known, f" (the cluster's could not be read: {clean_error(e)})"

        return lookup

    @activity.defn(name="check_policy")
    @classified
    def check_policy(self, req: PolicyCheckInput) -> PolicyDecision:
        return self.evaluate(req)

    @activity.defn(name="check_change")
    @classified
    def check_change(self, req: PolicyCheckInput) -> ChangeCheck:
        """What promoting would change in the target's folder (nothing is pushed), and the policies'
        decision on exactly that change: one fetch of main serves both."""
        prepared = self.repo.prepare(req.change())
        if not prepared.changed:
            return ChangeCheck(prepared=prepared)
        decision = self.evaluate(req.model_copy(update={"diff": prepared.diff}), base=prepared.base)
        return ChangeCheck(prepared=prepared, decision=decision)

    @activity.defn(name="check_approval")
    @classified
    def check_approval(self, req: PolicyCheckInput) -> ApprovalCheck:
        """The `promotion` policies' word on the last approval of `req.approvals` (the candidate): any
        approval rule that denies now is about it, since the earlier ones were all accepted. A signed
        candidate whose key main's trusted trust/revoked_keys lists now is refused, though the gate
        verified it against trust/ as the promotion started (a key revoked while a gate waits)."""
        candidate = req.approvals[-1] if req.approvals else None
        if candidate is not None and candidate.fingerprint:
            trust = self.repo.trust(self.repo.rules().commit)
            try:
                revoked = {signing.fingerprint(blob) for blob in signing.parse_revoked_keys(trust.revoked_keys)}
            except signing.SignatureError as e:
                return ApprovalCheck(allowed=False, reason=f"trust/revoked_keys on main cannot be read: {e}")
            if candidate.fingerprint in revoked:
                return ApprovalCheck(
                    allowed=False,
                    reason=f"the key {candidate.fingerprint} has been revoked (trust/revoked_keys on main) since "
                    "the promotion started; sign with another key",
                )
        return self._approval(req)

    def _approval(self, req: PolicyCheckInput, authors: dict[str, Any] | None = None) -> ApprovalCheck:
        decision = self.evaluate(req.model_copy(update={"phase": "approval", "render_objects": False}), None, authors)
        reasons = [
            v.message
            for v in decision.deny
            if v.rule.startswith("promotion.approvals.") or v.rule.startswith("promoter.")
        ]
        return ApprovalCheck(allowed=not reasons, reason="; ".join(reasons))

    @activity.defn(name="screen_approvers")
    @classified
    def screen_approvers(self, req: ScreenInput) -> ScreenResult:
        """Ask the policies who may decide the gate (its approvers, groups expanded), then about each of
        them alone, when a gate starts waiting: the update validator refuses anyone else, and anyone
        the policies refuse with their own reason, before anything enters history. The approval
        handler still asks the policies again for every approval it accepts."""
        who_may = self.evaluate(req.check.model_copy(update={"phase": "approval", "render_objects": False}))
        refused: dict[str, str] = {}
        authors = None
        if who_may.approvers:
            try:  # read once for every approver asked about
                authors = self.authors(req.check)
            except PromoterError:
                pass  # each approver's check reads them again, and denies naming why
        for who in who_may.approvers:
            alone = req.check.model_copy(
                update={"approvals": [Approval(approver=who, at=req.check.started_at, via="screen")]}
            )
            verdict = self._approval(alone, authors)
            if not verdict.allowed:
                refused[who] = verdict.reason
        return ScreenResult(approvers=who_may.approvers, refused=refused)
