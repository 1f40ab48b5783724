"""What the policy activities add to the engine's decision, and the CRDs they and the CLI read.

Each function here judges one thing the Rego policies cannot see (the PR's head outside the app's
folders, unsigned source commits, the namespaces and objects an app may write) and returns findings
as `PolicyViolation`s, so that `PolicyActivities` only gathers and combines them. `crds_in` is shared
with `promoter policy check`, which reads the CRDs from disk instead of from main: both parse the
same way and skip the same broken files. Nothing here imports Temporal or the Kubernetes client, so
the CLI's pre-commit path stays light.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from promoter.errors import PromoterError, TemporaryError
from promoter.models import PolicyCheckInput, PolicyDecision, PolicyViolation, RuleChange
from promoter.names import app_folder
from promoter.policy import clean_error
from promoter.render import parse_manifests

if TYPE_CHECKING:
    from promoter.cluster import Claim
    from promoter.models import ClusterConfig

    Claims = Callable[[ClusterConfig, str, list[dict[str, Any]]], list[Claim]]

OWNERSHIP_RETRY_S = (0.5, 1.5, 3.0)  # the waits between reads of who owns what, before an unreachable cluster denies


def crds_in(files: Mapping[str, bytes], where: Callable[[str], str]) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions among `files` (path → YAML text), in path order; `where(path)`
    names a file in a parse error. A broken file is skipped: it is reported where it is checked
    (another app's broken file is its own promotion's denial)."""
    found: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if b"CustomResourceDefinition" not in text:
            continue
        try:
            found += [
                o for o in parse_manifests({path: text}, where(path)) if o.get("kind") == "CustomResourceDefinition"
            ]
        except PromoterError:
            continue
    return found


def combined(decisions: list[PolicyDecision]) -> PolicyDecision:
    """Several members' decisions as one: allowed when all are, each finding once, in order."""

    def once(found: list[PolicyViolation]) -> list[PolicyViolation]:
        seen: dict[str, PolicyViolation] = {}
        for v in found:
            seen.setdefault(v.model_dump_json(), v)
        return list(seen.values())

    first = decisions[0]
    return first.model_copy(
        update={
            "allow": all(d.allow for d in decisions),
            "deny": once([v for d in decisions for v in d.deny]),
            "warn": once([v for d in decisions for v in d.warn]),
            "excepted": once([v for d in decisions for v in d.excepted]),
        }
    )


def input_error(engine: str, e: PromoterError) -> PolicyDecision:
    """A denial naming what could not be read or rendered (fail closed)."""
    return PolicyDecision(
        allow=False,
        engine=engine,
        deny=[
            PolicyViolation(
                rule="promoter.input_error",
                message=clean_error(e),
                severity="critical",
                remediation="Fix the manifests or policies named here, then promote again.",
            )
        ],
    )


def namespace_denials(req: PolicyCheckInput, objects: list[dict[str, Any]]) -> list[PolicyViolation]:
    """A denial for each object outside the namespaces the environment gives the app
    (`cluster.namespace` and `apps.<app>.namespaces`)."""
    extra = req.environment.apps.get(req.app)
    allowed = {req.environment.cluster.namespace, *(extra.namespaces if extra else [])}
    denied = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        namespace = meta.get("name") if obj.get("kind") == "Namespace" else meta.get("namespace")
        if namespace and namespace not in allowed:
            where = "/".join(p for p in (obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "")) if p)
            denied.append(
                PolicyViolation(
                    rule="promoter.namespace_not_allowed",
                    object=where,
                    message=f"{where} is in namespace {namespace}, which app {req.app} may not write in "
                    f"{req.target_env} (it may: {', '.join(sorted(allowed))})",
                    severity="critical",
                    remediation=f"Move the object into an allowed namespace, or list {namespace} under "
                    f"apps.{req.app}.namespaces in environments/{req.target_env}/environment.yaml.",
                )
            )
    return denied


def claim_denials(claims: Claims, req: PolicyCheckInput, objects: list[dict[str, Any]]) -> list[PolicyViolation]:
    """A denial for each object another app owns in the target cluster (or an existing one no app owns,
    without `cluster.adopt`). It fails closed: a cluster whose owners cannot be read, after a few
    brief retries of a blip, is one critical denial, and nothing is opened."""
    for wait in (*OWNERSHIP_RETRY_S, None):
        try:
            found = claims(req.environment.cluster, req.app, objects)
            break
        except (PromoterError, TemporaryError) as e:
            if isinstance(e, TemporaryError) and wait is not None:
                time.sleep(wait)  # a blip of the API server is waited out, briefly
                continue
            return [
                PolicyViolation(
                    rule="promoter.ownership_unchecked",
                    message=f"who owns {req.app}'s objects in {req.target_env} could not be read: {clean_error(e)}",
                    severity="critical",
                    remediation="Promote again once the cluster answers (or fix cluster in "
                    f"environments/{req.target_env}/environment.yaml, or the kubeconfig).",
                )
            ]
    return [
        PolicyViolation(
            rule=c.rule,
            object=c.object,
            message=f"{c.message} in {req.target_env}",
            severity="critical",
            remediation=c.remediation,
        )
        for c in found
    ]


class SourceGit(Protocol):
    """What these findings need of the git side (promoter.git.ports): the paths a PR's head changes
    outside some folders, and the unsigned commits of a promoted range."""

    def outside_folders(self, head: str, folders: Sequence[str]) -> list[str]: ...
    def unsigned_source(
        self, commit: str, source: str, target: str, apps: Sequence[str], head: str | None = None
    ) -> list[RuleChange]: ...


def outside_denials(repo: SourceGit, req: PolicyCheckInput) -> list[PolicyViolation]:
    """Before the merge: a denial naming what the PR's head changes outside the app's folders (a
    commit pushed onto the PR there would reach main unjudged: trust/, policies/, another app)."""
    if req.phase != "merge" or not req.head:
        return []
    folders = [app_folder(req.target_env, app) for app in req.members or [req.app]]
    outside = repo.outside_folders(req.head, folders)
    if not outside:
        return []
    shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
    return [
        PolicyViolation(
            rule="promoter.outside_folder",
            message=f"the PR's head {req.head[:7]} changes {shown}, outside {', '.join(folders)}; not merged",
            severity="critical",
            remediation="Take those changes out of the PR; change them on main through their own review.",
        )
    ]


def unsigned_denials(repo: SourceGit, req: PolicyCheckInput) -> list[PolicyViolation]:
    """With `source.require_signed`, a denial for each commit of the promoted range that touched the
    app's source folder without a trusted git signature (before the PR and before the merge)."""
    if not req.environment.source.require_signed or req.phase not in ("pre_pr", "merge"):
        return []
    unsigned = repo.unsigned_source(req.commit, req.source_env, req.target_env, [req.app], head=req.pr_head)
    return [
        PolicyViolation(
            rule="promoter.unsigned_source",
            message=(
                f"{c.commit[:12]} by {c.author} in the promoted range of {req.app} is not trusted: {c.reason}; "
                f"{req.target_env} takes only commits signed by a key trust/allowed_signers lists for git"
            ),
            severity="critical",
            remediation="Sign the commits (git commit -S with gpg.format ssh) with a listed key, then promote.",
        )
        for c in unsigned
    ]


WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec if isinstance(spec, dict) else {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {}) if isinstance(spec, dict) else {}
    template = (spec.get("template") or {}) if isinstance(spec, dict) else {}
    pod = template.get("spec") if isinstance(template, dict) else None
    return pod if isinstance(pod, dict) else {}


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _references(pod: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, name, how) of every ConfigMap and Secret a pod spec needs (not the `optional` ones)."""

    def ref(kind: str, how: str, r: object, key: str = "name") -> set[tuple[str, str, str]]:
        if isinstance(r, dict) and isinstance(r.get(key), str) and not r.get("optional"):
            return {(kind, r[key], how)}
        return set()

    found: set[tuple[str, str, str]] = set()
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for c in (c for c in containers if isinstance(c, dict)):
        for source in (s for s in c.get("envFrom") or [] if isinstance(s, dict)):
            found |= ref("ConfigMap", "envFrom", source.get("configMapRef"))
            found |= ref("Secret", "envFrom", source.get("secretRef"))
        for var in (v for v in c.get("env") or [] if isinstance(v, dict)):
            value = _mapping(var.get("valueFrom"))
            found |= ref("ConfigMap", "valueFrom", value.get("configMapKeyRef"))
            found |= ref("Secret", "valueFrom", value.get("secretKeyRef"))
    for volume in (v for v in pod.get("volumes") or [] if isinstance(v, dict)):
        found |= ref("ConfigMap", "a volume", volume.get("configMap"))
        found |= ref("Secret", "a volume", volume.get("secret"), "secretName")
        projected = _mapping(volume.get("projected"))
        for source in (s for s in projected.get("sources") or [] if isinstance(s, dict)):
            found |= ref("ConfigMap", "a volume", source.get("configMap"))
            found |= ref("Secret", "a volume", source.get("secret"))
    return found


def left_behind(req: PolicyCheckInput, source_files: Mapping[str, bytes]) -> set[tuple[str, str]]:
    """(kind, name) of each ConfigMap and Secret the source's app folder defines in one of the target's
    `local_files` (`source_files`: that folder's files at the commit, relative paths): promotion never
    copies those, so they stay behind. An unreadable one defines nothing here (its own check names it)."""
    local = {p: c for p, c in source_files.items() if p in set(req.environment.local_files)}
    try:
        found = parse_manifests(local, app_folder(req.source_env, req.app))
    except PromoterError:
        return set()
    named = ((o.get("kind"), (o.get("metadata") or {}).get("name")) for o in found)
    return {(k, n) for k, n in named if k in ("ConfigMap", "Secret") and isinstance(n, str)}


def local_file_advisories(
    req: PolicyCheckInput, objects: list[dict[str, Any]], behind: set[tuple[str, str]]
) -> list[PolicyViolation]:
    """An advisory (a warning, never a denial) for each ConfigMap or Secret a workload of the app needs
    that the target's folder, after the change, does not define, while the source defines it in a
    local file (`behind`, from `left_behind`): promotion never copies `local_files` (a new app's
    ConfigMap stays behind in the source), so the target environment must hold its own copy. What
    neither folder defines (a Secret created outside Git, by hand or by an operator) is not named: it
    is not Git's to copy."""
    local = req.environment.local_files
    if not local or req.target_env == req.source_env or not behind:
        return []
    defined = {(o.get("kind"), (o.get("metadata") or {}).get("name")) for o in objects}
    folder = " or ".join(f"{app_folder(req.target_env, app)}/" for app in req.members or [req.app])  # a set's members
    found: list[PolicyViolation] = []
    for obj in (o for o in objects if o.get("kind") in WORKLOADS):
        meta = obj.get("metadata") or {}
        where = "/".join([str(obj.get("kind")), str(meta.get("namespace") or "-"), str(meta.get("name") or "?")])
        for kind, name, how in sorted(_references(_pod_spec(obj))):
            if (kind, name) in defined or (kind, name) not in behind:
                continue
            found.append(
                PolicyViolation(
                    rule="promoter.local_file_missing",
                    object=where,
                    message=f"{where} needs {kind} {name} ({how}), which {folder} does not define: promotion "
                    f"never copies local_files ({', '.join(local)}), so {req.target_env} must hold its own copy",
                    severity="medium",
                    remediation=f"Commit {req.target_env}'s own {kind} {name} to {folder} (e.g. its "
                    f"{local[0]}), or create it in {req.target_env}'s cluster, before this promotion syncs.",
                )
            )
    return found
