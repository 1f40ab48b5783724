"""The GitOps repository's layout rules, as pure functions: branch names, the environments' order,
`group:NAME` approvers, the groups of `policies/data.yaml`. No git here: `gitrepo.py` reads the
repository and hands the text and names to these."""

from __future__ import annotations

from typing import Any

from promoter.errors import BadInput
from promoter.models import EnvironmentConfig, PlannedEnvironment
from promoter.names import check

PROMOTE, REVERT = "promote", "revert"
GROUP = "group:"


def promotion_branch(app: str, env: str, commit: str) -> str:
    """`promote/<app>/<env>/<short sha>`: derived from the input, so a retry finds its branch again."""
    return f"{branch_family(app, env)}{commit[:7]}"


def branch_family(app: str, env: str) -> str:
    """The prefix every promotion branch of an app into an environment shares."""
    return f"{PROMOTE}/{check(app, 'app')}/{check(env, 'environment')}/"


def family_of(branch: str) -> str:
    """The family (`promote/<app>/<env>/`) of a promotion branch."""
    return branch.rsplit("/", 1)[0] + "/"


def revert_branch(app: str, env: str, merge_commit: str) -> str:
    return f"{REVERT}/{check(app, 'app')}/{check(env, 'environment')}/{merge_commit[:7]}"


def groups_of(data: Any) -> dict[str, list[str]]:
    """`groups` of policies/data.yaml: a group name → its users."""
    groups = data.get("groups", {}) if isinstance(data, dict) else {}
    if not isinstance(groups, dict):
        raise BadInput("policies/data.yaml: 'groups' must map a group name to a list of users")
    return {str(k): [str(u) for u in (v or [])] for k, v in groups.items()}


def allowed_approvers(approvers: list[str], groups: dict[str, list[str]]) -> list[str]:
    """Who may decide a gate: the approvers named, and the members of the `group:NAME`s named."""
    allowed: set[str] = set()
    for who in approvers:
        allowed.update(groups.get(who[len(GROUP) :], []) if who.startswith(GROUP) else [who])
    return sorted(allowed)


def in_order(configs: list[EnvironmentConfig], groups: dict[str, list[str]]) -> list[PlannedEnvironment]:
    """The environments by `order`, the source first; two with the same order are bad input."""
    if not configs:
        raise BadInput("no environments: environments/<name>/environment.yaml is missing on main")
    by_order: dict[int, str] = {}
    for cfg in configs:
        if cfg.order in by_order:
            raise BadInput(
                f"environments '{by_order[cfg.order]}' and '{cfg.name}' both have order "
                f"{cfg.order}; give each environment a distinct order"
            )
        by_order[cfg.order] = cfg.name
    return [
        PlannedEnvironment(config=cfg, allowed_approvers=allowed_approvers(cfg.approval.approvers, groups))
        for cfg in sorted(configs, key=lambda c: c.order)
    ]
