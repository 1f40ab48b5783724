"""The GitOps repository's layout rules, as pure functions: branch names and the environments'
order. No git here: `promoter.git` reads the repository and hands names and configs to these. (Who may
approve, `group:NAME` expanded, is the policies' word: `data.promoter.decision.approvers`.)"""

from __future__ import annotations

from promoter.errors import BadInput
from promoter.models import EnvironmentConfig, PlannedEnvironment
from promoter.names import check

PROMOTE, REVERT = "promote", "revert"


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


def lift_branch(app: str, env: str, commit: str) -> str:
    """`release-hold/<app>/<env>/<short sha>`: the PR that lifts a hold (see promoter.holds)."""
    return f"release-hold/{check(app, 'app')}/{check(env, 'environment')}/{commit[:7]}"


def in_order(configs: list[EnvironmentConfig]) -> list[PlannedEnvironment]:
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
    return [PlannedEnvironment(config=cfg) for cfg in sorted(configs, key=lambda c: c.order)]
