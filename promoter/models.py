"""Pydantic models: environment.yaml, and every workflow, activity, update, signal and query payload.

All of them travel through the pydantic data converter (promoter.converter), so fields may be added
later (with defaults) without breaking running workflows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from promoter.verify import parse_success  # the `success` language (it imports nothing of promoter)

_DURATION = re.compile(r"(\d{1,18})\s*(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=366)  # a gate, a soak or a health check longer than a year is a typo


def parse_duration(value: Any) -> Any:
    """`"24h"`, `"1h30m"`, `"7d"`, seconds as a number, or null (no deadline); ISO 8601 passes through."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value < 0:  # NaN or negative
            raise ValueError("a duration cannot be negative")
        return _bounded(value, value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "never"):
            return None
        if text.startswith("p"):
            return value  # ISO 8601 (how a timedelta serialises): pydantic parses it
        pos, total = 0, 0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos == len(text) and pos > 0:
            return _bounded(total, value)
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:39] + "…"
    raise ValueError(f"{shown!r} is not a duration; write it like 30s, 5m, 24h, 7d or 1h30m")


def _bounded(seconds: float, written: Any) -> timedelta:
    if seconds > MAX_DURATION.total_seconds():
        shown = written if not isinstance(written, str) or len(written) <= 40 else written[:39] + "…"
        raise ValueError(f"{shown!r} is longer than the maximum of {MAX_DURATION.days}d; give a shorter duration")
    return timedelta(seconds=seconds)


def _at_most_max(value: timedelta | None) -> timedelta | None:
    if value is not None and value > MAX_DURATION:  # an ISO 8601 duration is parsed by pydantic itself
        raise ValueError(f"{value} is longer than the maximum of {MAX_DURATION.days}d; give a shorter duration")
    if value is not None and value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    return value


Duration = Annotated[timedelta | None, BeforeValidator(parse_duration), AfterValidator(_at_most_max)]

_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterConfig(_Strict):
    context: str | None = None
    kubeconfig: str | None = None
    namespace: str = "default"
    # who applies the merged folder: promoter itself (server-side apply), or Argo CD / Flux, which
    # promoter asks to reconcile and then watches
    sync: Literal["native", "argocd", "flux"] = "native"
    application: str = "{app}-{env}"  # the Argo CD Application, or the Flux Kustomization, of an app
    controller_namespace: str | None = None  # where it lives; default: argocd, or flux-system
    # the Kubernetes minor version the schema gate checks objects against ("1.31"); default: the newest shipped
    version: str | None = None
    # an object that exists and that no app owns (in no inventory, labelled for no app) is taken over by
    # the app that ships it only when this is true; otherwise promoting it is denied (docs/clusters.md)
    adopt: bool = False

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'write the version in quotes, e.g. "1.31" (YAML reads {value} as a number)')
        if isinstance(value, str) and not re.fullmatch(r"v?\d{1,3}\.\d{1,3}(\.\d{1,4})?", value.strip()):
            raise ValueError(f'{value[:40]!r} is not a Kubernetes version; write it as "1.31"')
        return value

    def reconciler(self, app: str, env: str) -> tuple[str, str]:
        """(name, namespace) of the app's Argo CD Application or Flux Kustomization."""
        default = "argocd" if self.sync == "argocd" else "flux-system"
        return self.application.replace("{app}", app).replace("{env}", env), self.controller_namespace or default


class WavesConfig(_Strict):
    """`waves:` of an environment with `clusters`: the clusters synced together, in turn, each wave judged
    (health, then the `verify` checks) before `pause` and the next. Either `size` (the clusters in their
    listed order, `size` at a time) or `groups` (lists of contexts, every cluster named once); a plain
    list of lists is read as `groups`."""

    size: int | None = Field(default=None, ge=1)
    groups: list[list[str]] | None = None
    pause: Duration = None

    @model_validator(mode="before")
    @classmethod
    def _list_is_groups(cls, value: Any) -> Any:
        return {"groups": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_way(self) -> WavesConfig:
        if (self.size is None) == (self.groups is None):
            raise ValueError("give either size (clusters per wave) or groups (lists of contexts), not both nor neither")
        if self.groups is not None and (not self.groups or not all(self.groups)):
            raise ValueError("groups: every wave names at least one cluster's context")
        return self


class ClusterStatus(BaseModel):
    """One cluster of an environment with `clusters`, in a stage: its wave and what the rollout did there."""

    context: str
    wave: int  # 1 for the first wave
    state: Literal["pending", "syncing", "synced", "healthy", "failed", "reverting", "reverted"] = "pending"
    message: str = ""
    synced_at: datetime | None = None  # when the stage's revision was applied (its sync ended)


class ApprovalConfig(_Strict):
    required: int = Field(default=0, ge=0)
    approvers: list[str] = Field(default_factory=list)
    timeout: Duration = None
    pull_request_reviews: bool = True  # an approving review on the stage's PR counts as an approval
    require_review: bool = False  # the gate also needs one approving review (the forge authenticates its author)
    # only approvals that prove who gave them count: an SSH-signed approval (trust/allowed_signers), or a
    # review read from a forge that authenticates its users (GitHub, GitLab, Gitea)
    require_signed: bool = False


class PolicyConfig(_Strict):
    enforce: list[str] = Field(default_factory=lambda: ["kubernetes", "promotion", "schemas"])
    warn_only: list[str] = Field(default_factory=list)
    # the Pod Security Standards level the kubernetes.security rules judge pods by, as a Pod Security
    # Admission namespace label sets it: privileged judges nothing, baseline its controls, restricted
    # all of them (the default, so an environment that says nothing keeps the strictest rules)
    pod_security: Literal["privileged", "baseline", "restricted"] = "restricted"


class SourceConfig(_Strict):
    # every commit in the promoted range that touched the app's folder must carry a git SSH signature by
    # a key trust/allowed_signers lists for `git`, as Flux and Argo CD verify sources; else denied before any PR
    require_signed: bool = False


class HttpProbe(_Strict):
    url: str
    expect_status: int = 200

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, not {url[:60]!r}")
        return url


class HealthConfig(_Strict):
    timeout: Duration = timedelta(minutes=5)
    http: list[HttpProbe] = Field(default_factory=list)


class PrometheusCheck(_Strict):
    """`verify[].prometheus`: a query whose one number (`result`) `success` judges (promoter.verify)."""

    query: str = Field(min_length=1, max_length=4000)
    success: str
    url: str | None = None  # this check's Prometheus; default: the worker's PROMOTER_PROMETHEUS_URL

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, not {url[:60]!r}")
        return url

    @field_validator("success")
    @classmethod
    def _parses(cls, success: str) -> str:
        parse_success(success)
        return success


class VerifyConfig(_Strict):
    """One `verify:` check of environment.yaml: a Prometheus query or an HTTP check, measured `count`
    times `interval` apart once the rollout is healthy; it fails once more than `failure_limit` failed."""

    name: str = Field(pattern=_NAME)
    prometheus: PrometheusCheck | None = None
    http: HttpProbe | None = None
    interval: Duration = timedelta(seconds=10)
    initial_delay: Duration = None  # before the first measurement (e.g. for a rate's window to fill)
    count: int = Field(default=1, ge=1, le=200)  # workflows.verification.MAX_MEASUREMENTS
    failure_limit: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> VerifyConfig:
        if (self.prometheus is None) == (self.http is None):
            raise ValueError(f"verify check {self.name!r} needs exactly one of prometheus or http")
        if self.interval is None or self.interval <= timedelta(0):
            raise ValueError(f"verify check {self.name!r}: interval must be a duration above 0, e.g. 10s")
        if self.failure_limit >= self.count:  # else every measurement could fail and the check still pass
            raise ValueError(
                f"verify check {self.name!r}: failure_limit ({self.failure_limit}) must be below count ({self.count})"
            )
        return self


class RevertConfig(_Strict):
    automatic: bool = True


class DriftConfig(_Strict):
    interval: Duration = timedelta(minutes=5)  # how often the environment's drift schedule looks
    self_heal: bool = False  # re-apply from Git what differs


class MergeConfig(_Strict):
    method: Literal["merge", "squash"] | None = None  # default: the worker's PROMOTER_MERGE_METHOD
    on_blocked: Literal["wait", "fail"] = "wait"  # a merge held back by branch protection or a required check
    wait: Duration = timedelta(minutes=30)  # how long `wait` retries before the stage fails


Event = Literal["waiting", "denied", "rejected", "expired", "reverted", "failed", "succeeded", "drift"]
NOTIFY_EVENTS: tuple[str, ...] = get_args(Event)
# who or what gave an approval, a refusal or a decision: the Web UI, the CLI, a review on the PR, the
# screening of approvers when a gate opens. Only `ui` and `cli` may arrive in an update or a signal
# (both are a Temporal client, so which of the two is declared, not proven); `pull_request` is the PR
# watcher's alone, and `screen` the gate's own.
Via = Literal["ui", "cli", "pull_request", "screen"]
SENT_VIA: tuple[str, ...] = ("ui", "cli")  # the channels a payload may name
# what proves an approval's approver: an SSH signature verified against trust/allowed_signers, a
# review read from a forge that authenticates its users, or nothing but the name given
Proof = Literal["signed", "forge", "declared"]


def proof_note(proof: str, via: str) -> str:
    """How an approval's proof is shown beside its channel: ` (signed)`, nothing for a review read from
    a forge that authenticates, ` (unauthenticated)` for one that does not, ` (unsigned)` otherwise."""
    if proof == "signed":
        return " (signed)"
    if proof == "declared":
        return " (unauthenticated)" if via == "pull_request" else " (unsigned)"
    return ""


AuditKind = Literal[
    "policy",
    "approval",
    "refusal",
    "rejection",
    "voided",
    "review",
    "merge",
    "expired",
    "revert",
    "verdict",
    "cancelled",
    "verify",  # a verification check's measurements and verdict
    "break-glass",  # a break-glass let a freeze through (its ID, who asked, until when, why)
]
Phase = Literal["pre_pr", "approval", "merge", "check"]  # when the policies are asked
PullRequestState = Literal["open", "merged", "closed"]


class Webhook(_Strict):
    """A Slack-compatible webhook. `url` may be `${NAME}`: the worker reads it from its environment, so
    a secret URL never enters the repository or the workflow history."""

    url: str
    events: list[str] = Field(default_factory=list)  # empty: every event

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = [e for e in events if e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; choose from: {', '.join(NOTIFY_EVENTS)}")
        return events


class AppSettings(_Strict):
    """`apps.<app>` in environment.yaml: what one app may do in this environment beyond the defaults."""

    namespaces: list[str] = Field(default_factory=list)  # namespaces it may write besides cluster.namespace


class BreakGlassConfig(_Strict):
    """`break_glass` in environment.yaml: who approves a break-glass of this environment (`promoter
    break-glass`: a time-boxed pass through a freeze), and how many of them must (docs/policies.md)."""

    approvers: list[str] = Field(min_length=1)  # names, or group:NAME from policies/data.yaml's groups
    required: int = Field(default=1, ge=1)


class EnvironmentConfig(_Strict):
    """`environments/<name>/environment.yaml`; unknown keys are an error."""

    name: str = Field(pattern=_NAME)
    # where it stands: a line by `order` (the lowest is the source), or a graph by `after` (the environments
    # it takes a version from once it is healthy and soaked in every one; none: the source); a repository
    # uses one or the other (promoter.environments checks the whole)
    order: int | None = None
    after: list[Annotated[str, Field(pattern=_NAME)]] | None = None
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    # several clusters instead of `cluster` (each a ClusterConfig with a context; later entries take the
    # first's namespace), synced in `waves` after the one merge; `cluster` becomes the first of them
    clusters: list[ClusterConfig] | None = Field(default=None, min_length=1)
    waves: WavesConfig | None = None
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    verify: list[VerifyConfig] = Field(default_factory=list)  # metric and HTTP checks after health (docs)
    revert: RevertConfig = Field(default_factory=RevertConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    soak: Duration = None
    local_files: list[str] = Field(default_factory=list)
    notify: list[Webhook] = Field(default_factory=list)
    apps: dict[str, AppSettings] = Field(default_factory=dict)  # per app: {namespaces: [...]}
    break_glass: BreakGlassConfig | None = None  # none: no break-glass through this environment's freezes

    @field_validator("approval")
    @classmethod
    def _approvers_can_reach_quorum(cls, approval: ApprovalConfig) -> ApprovalConfig:
        if approval.required > 0 and not approval.approvers:
            raise ValueError(f"approval.required is {approval.required} but approval.approvers is empty")
        return approval

    @field_validator("clusters")
    @classmethod
    def _named_clusters(cls, clusters: list[ClusterConfig] | None) -> list[ClusterConfig] | None:
        for i, c in enumerate(clusters or []):
            if not c.context:
                raise ValueError(f"entry {i + 1} has no context; name each cluster's kubeconfig context")
            if "namespace" not in c.model_fields_set and clusters:
                c.namespace = clusters[0].namespace
            elif clusters and c.namespace != clusters[0].namespace:
                raise ValueError(
                    f"{c.context}: namespace {c.namespace} differs from the first cluster's ({clusters[0].namespace}); "
                    "an environment writes one namespace in every cluster"
                )
        # by context alone: waves, status rows and the revert name a cluster by its context, so two
        # kubeconfigs' same-named contexts would be one cluster to them (and the other never reverted)
        contexts = [c.context for c in clusters or []]
        twice = next((c for i, c in enumerate(contexts) if contexts.index(c) != i), None)
        if twice:
            raise ValueError(
                f"context {twice} is listed twice; list each cluster once (contexts name clusters, even in two "
                "kubeconfigs: rename one)"
            )
        return clusters

    @model_validator(mode="after")
    def _first_cluster(self) -> EnvironmentConfig:
        if self.clusters:  # what judges one cluster (the schema version, CRDs, owners) reads the first
            self.cluster = self.clusters[0]
        return self

    def targets(self) -> list[ClusterConfig]:
        """The clusters a merge is synced to: `clusters`, or the one `cluster`."""
        return list(self.clusters) if self.clusters else [self.cluster]


class StageState(StrEnum):
    PENDING = "pending"
    CHECKING_POLICY = "checking_policy"
    POLICY_DENIED = "policy_denied"
    OPENING_PR = "opening_pr"  # pushing the stage's branch and opening its pull request
    PR_OPEN = "pr_open"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    MERGING = "merging"
    SYNCING = "syncing"
    VERIFYING = "verifying"
    HEALTHY = "healthy"
    REVERTING = "reverting"
    REVERTED = "reverted"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class PromotionState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    POLICY_DENIED = "policy_denied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REVERTED = "reverted"
    FAILED = "failed"
    CANCELLED = "cancelled"


# ---------------------------------------------------------------- resolving


class Subject(BaseModel):
    """What a promotion moves: one app, or a release set (`app` is then the set's name) of several
    apps promoted as one, with one PR per environment for all."""

    app: str
    members: list[str] = Field(default_factory=list)  # a release set's apps

    @property
    def apps(self) -> list[str]:
        """The apps this moves: a release set's members, or the one app."""
        return self.members or [self.app]


class PromotionRequest(Subject):
    commit: str | None = None
    to_env: str | None = None
    with_patch: bool = False  # `promoter dry-run --diff`: each stage's change as a unified diff too


class PlannedEnvironment(BaseModel):
    config: EnvironmentConfig


class Trust(BaseModel):
    """Who may sign approvals: `trust/allowed_signers` (git's allowed-signers format) and
    `trust/revoked_keys` as they were at `revision` of main when the promotion started."""

    revision: str = ""
    allowed_signers: str = ""
    revoked_keys: str = ""


class RuleChange(BaseModel):
    """A commit of main that changed the rule files and is not trusted: its change is not used."""

    commit: str
    author: str
    reason: str  # e.g. "unsigned", or why its signature does not count


class RulesRevision(BaseModel):
    """The revision of the rule files (policies/, every environment.yaml, trust/) that judges: the
    newest one reached from the trust root through commits a trusted key signed (docs/policies.md)."""

    commit: str = ""
    root: str | None = None  # the trust root (None: none is set, so main's rule files are used as they are)
    untrusted: list[RuleChange] = Field(default_factory=list)  # on main since `commit`, and not used (the first 20)
    more_untrusted: int = 0  # untrusted changes beyond those listed

    def notice(self) -> str:
        """One line for status, the Web UI and the PR body ("" when main's rules are all trusted)."""
        if not self.untrusted:
            return ""
        changes = "; ".join(f"{c.commit[:12]} by {c.author}, {c.reason}" for c in self.untrusted[:5])
        others = len(self.untrusted) - 5 + self.more_untrusted
        more = f" (and {others} more)" if others > 0 else ""
        return (
            f"main has untrusted rule changes since {self.commit[:12]}: {changes}{more}; "
            f"they are not used until a trusted key signs them (`promoter policy trust`)"
        )


class PromotionPlan(Subject):
    commit: str
    short_commit: str
    author: str
    message: str
    environments: list[PlannedEnvironment]  # sorted by order, the source first, up to `to_env`
    trust: Trust = Field(default_factory=Trust)
    rules: RulesRevision = Field(default_factory=RulesRevision)  # what the environments and trust were read at

    @property
    def title(self) -> str:
        """What it promotes, as people read it: `demo`, or a release set `release (api, worker)`."""
        return f"{self.app} ({', '.join(self.members)})" if self.members else self.app


# ---------------------------------------------------------------- workflow in/out


class PromotionInput(BaseModel):
    plan: PromotionPlan
    requested_by: str = "unknown"


class Approval(BaseModel):
    approver: str
    at: datetime
    via: Via
    comment: str = ""
    head: str | None = None  # the PR head it was given on: a new commit on the branch voids it
    proof: Proof = "declared"
    fingerprint: str = ""  # of the SSH key that signed it (proof "signed")
    statement: str = ""  # the signed statement (promoter.signing.Statement.text())
    signature: str = ""  # its SSH signature, on one line (promoter.signing.armor_to_line)


class AuditEntry(BaseModel):
    """One decision, kept in the status, the PR body and the merge commit's trailers."""

    at: datetime
    env: str
    kind: AuditKind
    actor: str = "promoter"
    via: Via | Literal[""] = ""
    detail: str = ""
    proof: Proof | Literal[""] = ""  # an approval's or a rejection's: what proves who gave it

    def trailer(self) -> str:
        """A git trailer (one line): `Promoter-Approval: alice via ui at 2026-...: looks good`."""
        who = f"{self.actor} via {self.via}" if self.via else self.actor
        if self.proof:
            who += proof_note(self.proof, self.via)
        text = f"{who} at {self.at:%Y-%m-%dT%H:%M:%SZ}" + (f": {self.detail}" if self.detail else "")
        kind = "-".join(part.capitalize() for part in self.kind.split("-"))  # Promoter-Break-Glass
        return f"Promoter-{kind}: " + " ".join(text.split())


class Supersede(BaseModel):
    """Payload of the `supersede` signal: a newer promotion of the same app (or a release set holding
    it) replaces this one."""

    commit: str
    requested_by: str = "unknown"
    url: str | None = None  # of the newer promotion in the Web UI
    what: str = ""  # what the newer one promotes when it is not this app: a release set's name and apps


class Refusal(BaseModel):
    approver: str
    at: datetime
    via: Via
    reason: str


class Decision(BaseModel):
    """Payload of the `approve` / `reject` update and signal. `statement` and `signature` make it a
    signed decision: the statement (promoter.signing.Statement: promotion, run, environment, commit,
    the folders' trees at the PR head, the decision, the approver, a time, the comment) and its SSH
    signature (namespace `promoter-approval`); the gate accepts it only when the statement is its own."""

    env: str
    approver: str
    comment: str = ""
    via: Via = "ui"
    statement: str = ""
    signature: str = ""  # armored (as `ssh-keygen -Y sign` writes it) or on one line


class StageStatus(BaseModel):
    env: str
    order: int  # `order`, or in a graph (`after`) the environment's place in the plan
    after: list[str] = Field(default_factory=list)  # in a graph: the environments it waits for (a line: none)
    state: StageState = StageState.PENDING
    source: bool = False
    branch: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    merge_commit: str | None = None
    revert_commit: str | None = None
    revert_pr_number: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    approvals_required: int = 0
    approvals: list[Approval] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    voided: list[Approval] = Field(default_factory=list)  # given on an older head of the PR
    approvers: list[str] = Field(default_factory=list)  # who may decide this gate (groups expanded)
    screened: dict[str, str] = Field(default_factory=dict)  # approver -> the policy's reason to refuse them
    head_sha: str | None = None  # the PR head the gate knows
    trees: dict[str, str] = Field(default_factory=dict)  # folder -> git tree id at head_sha: what would merge
    review_states: dict[str, str] = Field(default_factory=dict)  # review id -> its state when last taken in
    review_required: bool = False
    signed_required: bool = False
    # a lift's or a break-glass's one stage: the commit its signed decisions name (OpenedLift.commit); "" for a
    # promotion's stage, whose statement names the promotion's commit
    commit: str = ""
    rejected_by: str | None = None
    deadline: datetime | None = None
    message: str = ""
    policy: PolicyDecision | None = None
    verification: list[CheckStatus] = Field(default_factory=list)  # its `verify` checks' measurements
    clusters: list[ClusterStatus] = Field(default_factory=list)  # with `clusters`: each one's wave and state


class PromotionStatus(BaseModel):
    id: str
    run_id: str = ""  # a signed approval names it: a signature for an earlier run of the same ID is refused
    app: str  # the app, or a release set's name
    commit: str
    members: list[str] = Field(default_factory=list)  # a release set's apps
    author: str = ""
    requested_by: str = ""
    state: PromotionState = PromotionState.RUNNING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    stages: list[StageStatus] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)
    superseded_by: str | None = None
    notices: list[str] = Field(default_factory=list)  # what went wrong without failing it (a webhook, ...)


# ---------------------------------------------------------------- activities


class PrepareInput(Subject):  # a release set: every member's folder changes in one commit
    commit: str
    source_env: str
    target_env: str
    local_files: list[str] = Field(default_factory=list)
    base: str | None = None  # the commit of main to build on (the one the policies judged); None: main now


class DiffSummary(BaseModel):
    added: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


class PrepareResult(BaseModel):
    changed: bool
    branch: str | None = None
    head: str | None = None
    base: str | None = None
    diff: DiffSummary = Field(default_factory=DiffSummary)


class OpenPullRequestInput(BaseModel):
    branch: str
    title: str
    body: str
    labels: list[str] = Field(default_factory=list)


class PullRequest(BaseModel):
    number: int
    title: str
    body: str
    head: str
    base: str
    state: PullRequestState
    url: str
    head_sha: str | None = None
    merge_commit: str | None = None


class UpdatePullRequest(BaseModel):
    number: int
    body: str  # the new body


class MergePullRequest(BaseModel):
    number: int
    comment: str = ""  # the merge commit's message
    expected_head: str | None = None  # merge only if the PR's head is still this commit
    merge_method: Literal["merge", "squash"] | None = None  # None: the forge's configured default
    fail_when_blocked: bool = False  # a blocked merge fails at once instead of being retried
    not_after: datetime | None = None  # the policies' decision stands until then: no merge after it (Expired)


class ClosePullRequest(BaseModel):
    number: int
    comment: str = ""  # why, left on the PR


class WatchInput(BaseModel):
    """What the gate already knows of its PR; the watcher returns when the forge says otherwise."""

    number: int
    head_sha: str | None = None
    folders: list[str] = Field(default_factory=list)  # their trees at a new head are returned with it
    review_states: dict[str, str] = Field(default_factory=dict)  # a review unseen, or whose state changed, is news


class ReviewEvent(BaseModel):
    id: str
    author: str
    state: str  # approved | changes_requested | commented
    at: datetime
    commit: str | None = None
    body: str = ""


class WatchResult(BaseModel):
    state: PullRequestState
    head_sha: str | None = None
    trees: dict[str, str] = Field(default_factory=dict)  # the folders' trees at a new head_sha
    authenticated: bool = True  # the forge authenticates its reviewers (the local forge does not)
    # the forge records the commit each review was given on: one that names none never counts
    pins_reviews: bool = False
    merge_commit: str | None = None
    reviews: list[ReviewEvent] = Field(default_factory=list)  # new, or changed (e.g. dismissed), since `review_states`


class ScreenResult(BaseModel):
    approvers: list[str] = Field(default_factory=list)  # who may decide the gate, as the policies say
    refused: dict[str, str] = Field(default_factory=dict)  # approver -> the policy's reason


class NotifyInput(BaseModel):
    url: str  # or ${NAME}
    event: Event
    text: str
    promotion_id: str
    app: str
    env: str
    commit: str
    state: str
    pr_url: str | None = None


class MergeResult(BaseModel):
    number: int
    merge_commit: str


class HistoryEntry(BaseModel):
    env: str
    state: str
    healthy_since: datetime | None = None
    soak_seconds: float = 0


class PolicyCheckInput(BaseModel):
    """The policy step's input; the activity renders the objects and builds the input document."""

    promotion_id: str
    app: str  # the app, or a release set's name
    members: list[str] = Field(default_factory=list)  # a release set: each member judged as its app, one decision
    commit: str
    author: str
    source_env: str
    target_env: str
    started_at: datetime
    environment: EnvironmentConfig
    environments: list[str] = Field(default_factory=list)  # in promotion order
    history: list[HistoryEntry] = Field(default_factory=list)
    phase: Phase = "pre_pr"
    evaluated_at: datetime | None = None
    render_objects: bool = True
    head: str | None = None  # render the target from this commit (the PR's head) instead of the computed change
    pr_head: str | None = None  # the stage's PR head: whoever pushed onto the PR is an author too
    diff: DiffSummary = Field(default_factory=DiffSummary)
    approvals: list[Approval] = Field(default_factory=list)

    def change(self, base: str | None = None) -> PrepareInput:
        """The change this check is about: the source's folder(s) at the commit, into the target's. The
        one place a `PrepareInput` is made from a stage, so that the change a promotion pushes, the
        one its policies judged and the one `promoter dry-run --diff` shows cannot differ. `base`: the
        commit of main to build on (the one the policies judged)."""
        return PrepareInput(
            app=self.app,
            members=self.members,
            commit=self.commit,
            source_env=self.source_env,
            target_env=self.target_env,
            local_files=self.environment.local_files,
            base=base,
        )


class ScreenInput(BaseModel):
    check: PolicyCheckInput


class ApprovalCheck(BaseModel):
    allowed: bool
    reason: str = ""


class PolicyViolation(BaseModel):
    rule: str
    message: str
    severity: str = "high"
    object: str | None = None
    path: str | None = None  # the field's JSON path, for a schema finding (spec.replicas)
    remediation: str = ""
    exception: str = ""  # the exception that excepts it, or that expired ("id by owner until date: reason")


class PolicyDecision(BaseModel):
    allow: bool
    deny: list[PolicyViolation] = Field(default_factory=list)
    warn: list[PolicyViolation] = Field(default_factory=list)
    excepted: list[PolicyViolation] = Field(default_factory=list)  # denials a live exception excepts
    engine: str = ""
    revision: str = ""  # of the policy bundle that decided
    approvers: list[str] = Field(default_factory=list)  # who may decide the gate (groups expanded)
    # until when it stands: a merge after it is refused and the policies asked again (promoter.policy.validity)
    valid_until: datetime | None = None


class DriftInput(BaseModel):
    env: str
    apps: list[str] = Field(default_factory=list)  # none: every app of the environment on main
    heal: bool | None = None  # None: as the environment's `drift.self_heal` says
    paused: list[str] = Field(default_factory=list)  # apps being promoted now: left alone (no fight with a sync)
    # True: compare only, and mark on each app whether it is to be healed; DriftWorkflow then heals each
    # such app itself, holding the app's claim (`promote-<app>`), so that no promotion runs beside the heal
    defer_heal: bool = False


class UnpromotedChange(BaseModel):
    """A commit of main that changed an environment's app folder after what promoter last promoted there."""

    commit: str
    author: str  # "name <email>", as the commit names its author

    def line(self) -> str:
        return f"unpromoted change on main: {self.commit[:12]} by {self.author}"


class PromotedFolder(BaseModel):
    """What drift compares an app folder of an environment with, and heals it to (GitRepository.promoted_folder)."""

    revision: str  # the commit of main whose folder that is
    promoted: bool  # False: no promotion ever wrote the folder; `revision` is the commit that created it
    unpromoted: list[UnpromotedChange] = Field(default_factory=list)  # newest first: on main, never promoted
    unhealable: str = ""  # why a heal must not apply `revision` ("": it may)


class FieldDrift(BaseModel):
    object: str  # Kind/namespace/name
    path: str  # e.g. spec.replicas; "" for the whole object (deleted by hand, or no longer in Git)
    git: Any = None  # "present" for an object deleted by hand; None for one that Git no longer has
    live: Any = None
    since: datetime | None = None  # when the live value was written, where the cluster records it
    cluster: str = ""  # with `clusters`: the context of the cluster where it differs


class AppDrift(BaseModel):
    app: str
    drifts: list[FieldDrift] = Field(default_factory=list)
    healed: bool = False
    paused: bool = False  # a promotion of the app is in flight: not compared this time
    revision: str = ""  # the commit of main whose folder it was compared with: the last promoted (see PromotedFolder)
    unpromoted: list[UnpromotedChange] = Field(default_factory=list)  # reported, never applied by a heal
    to_heal: bool = False  # it differs, healing is on and nothing refuses it (see `defer_heal`)
    note: str = ""  # why what differs was not healed (a promotion runs, never promoted, ...)


class DriftReport(BaseModel):
    env: str
    revision: str  # main's commit when compared (each app's own revision compared with: AppDrift.revision)
    checked_at: datetime
    apps: list[AppDrift] = Field(default_factory=list)
    notify: list[str] = Field(default_factory=list)  # the environment's webhooks that take `drift` (or ${NAME})

    @property
    def drifted(self) -> list[AppDrift]:
        return [a for a in self.apps if a.drifts]


class LiftHoldInput(BaseModel):
    """`promoter lift-hold`: lift the hold of `app` @ `commit` in `env` (see promoter.holds). With `until`,
    `promoter break-glass`: a break-glass of `app` in `env` until then (promoter.breakglass; `commit` is
    empty), through the same gate: a PR that needs its own approvals."""

    app: str
    env: str
    commit: str
    requested_by: str
    reason: str
    until: datetime | None = None
    # a break-glass asked with `--sign-key`: `promoter.breakglass.request_statement` and its SSH signature
    # (one line), verified by the activity that opens it against trust/ at the trusted rules revision
    statement: str = ""
    signature: str = ""


class OpenedLift(BaseModel):
    """The lift-hold PR, opened, and what its gate needs to know."""

    pr: PullRequest
    commit: str  # the held commit, in full
    author: str  # its author (the policies may refuse them as an approver)
    hold_reason: str
    environment: EnvironmentConfig
    # trust/allowed_signers and revoked_keys at the trusted rules revision of main the gate was read at: what
    # verifies its signed approvals (empty for a lift opened before it was recorded)
    trust: Trust = Field(default_factory=Trust)
    # the key that signed the break-glass request ("" unsigned): it may not approve what it asked for
    asker_fingerprint: str = ""


class StagePlan(BaseModel):
    """What a promotion would do in one environment (`promoter dry-run`)."""

    env: str
    source: bool = False  # the source: its policy check, sync and health; no PR
    skipped: bool = False  # its folder already matches the source at the commit
    diff: DiffSummary = Field(default_factory=DiffSummary)
    patch: str = ""  # the change as a unified diff (`promoter dry-run --diff`)
    decision: PolicyDecision | None = None  # the policies' decision before the PR (None when skipped)
    approvals_required: int = 0
    require_review: bool = False
    pull_request_reviews: bool = False
    approvers: list[str] = Field(default_factory=list)  # who may decide its gate (groups expanded)
    screened: dict[str, str] = Field(default_factory=dict)  # approver -> the policy's reason to refuse them
    soak_s: float = 0.0
    after: list[str] = Field(default_factory=list)  # in a graph: the environments it waits for (DryRun fills it)

    @property
    def denied(self) -> bool:
        return self.decision is not None and not self.decision.allow


class DryRun(BaseModel):
    """`promoter dry-run`: the plan, and what each environment would see, in order."""

    plan: PromotionPlan
    stages: list[StagePlan]

    @model_validator(mode="after")
    def _graph(self) -> DryRun:
        """Environments in a graph (`after`): each stage names what it waits for, as the plan has it."""
        after = {e.config.name: e.config.after for e in self.plan.environments}
        if any(names is not None for names in after.values()):
            for stage in self.stages:
                stage.after = list(after.get(stage.env) or [])
        return self

    @property
    def denied(self) -> list[str]:
        return [s.env for s in self.stages if s.denied]


class ChangeCheck(BaseModel):
    """`check_change`'s answer: what promoting would change (nothing pushed), and the policies'
    decision on exactly that change (None when nothing would change)."""

    prepared: PrepareResult
    decision: PolicyDecision | None = None


class OpenChangeInput(BaseModel):
    """Push the stage's branch and open its PR (`open_change`)."""

    change: PrepareInput
    title: str
    body: str
    labels: list[str] = Field(default_factory=list)
    promotion_id: str = ""  # the promotion whose PR this is ("": a caller that names none)


class OpenedChange(BaseModel):
    prepared: PrepareResult  # the branch and the head that was pushed
    trees: dict[str, str] = Field(default_factory=dict)  # the changed folders' tree ids at the head
    pr: PullRequest | None = None  # None: main already has the change, nothing was opened


class SyncInput(BaseModel):
    promotion_id: str
    app: str
    env: str
    revision: str
    cluster: ClusterConfig


class SyncResult(BaseModel):
    applied: int = 0
    unchanged: int = 0
    pruned: int = 0
    engine: str = ""
    note: str = ""  # said once, e.g. an inventory built from a label-only sync's labels


class HealthInput(BaseModel):
    app: str
    env: str
    revision: str
    cluster: ClusterConfig
    timeout: Duration = None
    http: list[HttpProbe] = Field(default_factory=list)


class HealthResult(BaseModel):
    healthy: bool
    reason: str = ""
    engine: str = ""


class MeasureInput(BaseModel):
    """One measurement of a `verify` check (the `measure` activity substitutes `{{app}}` and `{{env}}`)."""

    check: VerifyConfig
    app: str
    env: str


class Measurement(BaseModel):
    at: datetime
    passed: bool
    value: float | None = None  # the query's number, or the HTTP status
    error: str = ""  # why it failed (an unreachable server, an empty answer, `success` not met)


class CheckStatus(BaseModel):
    """A `verify` check of a stage: what it measures, its measurements (the last 20), its verdict."""

    name: str
    app: str
    kind: Literal["prometheus", "http"]
    target: str  # the query (substituted), or the URL
    success: str = ""  # the prometheus check's condition; an HTTP check's: `status == N`
    count: int = 1
    failure_limit: int = 0
    taken: int = 0
    failed: int = 0
    measurements: list[Measurement] = Field(default_factory=list)
    verdict: Literal["running", "passed", "failed", "stopped"] = "running"  # stopped: another check failed
    cluster: str = ""  # with `clusters`: the wave's cluster a check naming {{cluster}} measured


class RevertInput(Subject):  # a release set: every member's folder is reverted
    env: str
    merge_commit: str
    pr_number: int
    reason: str
    commit: str = ""  # the promoted commit: the revert's merge holds it out of `env` (see promoter.holds)


class ClaimInput(BaseModel):
    """A release set's hold on `promote-<app>` while it runs (workflows/claim.py)."""

    app: str
    commit: str
    set_id: str  # the release set's workflow ID
    requested_by: str = "unknown"


class RevertResult(BaseModel):
    reverted: bool
    revert_commit: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    engine: str = ""


StageStatus.model_rebuild()
PromotionStatus.model_rebuild()
