"""The environment graph (`after:` in environment.yaml) as promoter.environments reads it: the order a
promotion goes through a graph (the source first, environments side by side sharing a level), what each
environment waits for, `--to ENV` as the environments on some path from the source to ENV (also through
a real resolve against a git origin), and every bad input (`order` beside `after`, an unknown name, an
environment named twice or after itself, a second source, a cycle, a malformed `after`) refused in one
line that names the file; a repository by `order` reads as it did."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promoter.environments import in_order, last, levels, parse_environment, path_line, up_to, upstreams
from promoter.errors import BadInput
from promoter.gitrepo import GitClone
from promoter.models import EnvironmentConfig, PlannedEnvironment, PromotionRequest
from tests.support.gitops import Origin

GRAPH: list[dict[str, object]] = [  # shuffled: the order comes from `after`, not from the listing
    {"name": "prod", "after": ["staging-eu", "staging-us"]},
    {"name": "staging-us", "after": ["dev"]},
    {"name": "dev"},
    {"name": "staging-eu", "after": ["dev"]},
]


def configs(envs: list[dict[str, object]]) -> list[EnvironmentConfig]:
    return [EnvironmentConfig.model_validate(e) for e in envs]


def names(envs: list[PlannedEnvironment]) -> list[str]:
    return [e.config.name for e in envs]


def test_a_graph_is_ordered_source_first_with_branches_side_by_side() -> None:
    envs = in_order(configs(GRAPH))
    assert names(envs) == ["dev", "staging-eu", "staging-us", "prod"]
    assert upstreams(envs) == {
        "dev": [],
        "staging-eu": ["dev"],
        "staging-us": ["dev"],
        "prod": ["staging-eu", "staging-us"],
    }
    assert levels(envs) == {"dev": 1, "staging-eu": 2, "staging-us": 2, "prod": 3}
    assert last(envs) == "prod"
    assert path_line(envs) == "dev → staging-eu ∥ staging-us → prod"  # as promote, dry-run and the UI say it


def test_to_env_in_a_graph_is_every_environment_on_a_path_to_it() -> None:
    envs = in_order(configs([*GRAPH, {"name": "qa", "after": ["staging-us"]}]))
    assert names(up_to(envs, "staging-us")) == ["dev", "staging-us"]
    assert names(up_to(envs, "prod")) == ["dev", "staging-eu", "staging-us", "prod"]
    assert names(up_to(envs, "qa")) == ["dev", "staging-us", "qa"]
    assert last(up_to(envs, "qa")) == "qa"
    assert last(envs) is None  # two ends (prod and qa): the plan went to every environment


def test_a_line_by_order_reads_as_before() -> None:
    envs = in_order(
        configs([{"name": "prod", "order": 3}, {"name": "dev", "order": 1}, {"name": "staging", "order": 2}])
    )
    assert names(envs) == ["dev", "staging", "prod"]
    assert upstreams(envs) == {"dev": [], "staging": ["dev"], "prod": ["staging"]}
    assert names(up_to(envs, "staging")) == ["dev", "staging"]
    assert last(envs) == "prod"
    assert levels(envs) == {"dev": 1, "staging": 2, "prod": 3}
    assert path_line(envs) == "dev → staging → prod"


@pytest.mark.parametrize(
    ("envs", "expected"),
    [
        (
            [{"name": "dev", "order": 1}, {"name": "prod", "after": ["dev"]}],
            "environments/dev/environment.yaml: order: the environments are a graph "
            "(environments/prod/environment.yaml has `after`); use one or the other",
        ),
        (
            [{"name": "dev"}, {"name": "prod", "after": ["dev"], "order": 2}],
            "environments/prod/environment.yaml: order: the environments are a graph",
        ),
        (
            [{"name": "dev"}, {"name": "prod", "after": ["staging"]}],
            "environments/prod/environment.yaml: after: unknown environment 'staging'; environments: dev, prod",
        ),
        (
            [{"name": "dev"}, {"name": "prod", "after": ["prod"]}],
            "environments/prod/environment.yaml: after: names prod itself",
        ),
        (
            [{"name": "dev"}, {"name": "prod", "after": ["dev", "dev"]}],
            "environments/prod/environment.yaml: after: names an environment twice",
        ),
        (
            [{"name": "dev"}, {"name": "qa"}, {"name": "prod", "after": ["dev"]}],
            "environments/qa/environment.yaml: after: missing; dev and qa both come after nothing",
        ),
        (  # staging and prod have no way in: each waits for the other
            [{"name": "dev"}, {"name": "staging", "after": ["prod"]}, {"name": "prod", "after": ["staging"]}],
            "environments/prod/environment.yaml: after: a cycle (prod → staging → prod): no version can reach",
        ),
        (  # a longer cycle, with a way out of it
            [
                {"name": "dev"},
                {"name": "a", "after": ["c", "dev"]},
                {"name": "b", "after": ["a"]},
                {"name": "c", "after": ["b"]},
                {"name": "d", "after": ["c"]},
            ],
            "after: a cycle (",
        ),
        (  # no source at all
            [{"name": "dev", "after": ["prod"]}, {"name": "prod", "after": ["dev"]}],
            "environments/dev/environment.yaml: after: a cycle (dev → prod → dev)",
        ),
        (
            [{"name": "dev", "order": 1}, {"name": "prod"}],
            "environments/prod/environment.yaml: order: missing; give each environment a distinct order, or name",
        ),
    ],
)
def test_bad_graphs_are_refused_in_one_line_naming_the_file(envs: list[dict[str, object]], expected: str) -> None:
    with pytest.raises(BadInput) as err:
        in_order(configs(envs))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_a_cycle_names_every_environment_in_it() -> None:
    envs = [
        {"name": "dev"},
        {"name": "a", "after": ["c", "dev"]},
        {"name": "b", "after": ["a"]},
        {"name": "c", "after": ["b"]},
    ]
    with pytest.raises(BadInput) as err:
        in_order(configs(envs))
    assert "(a → b → c → a)" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: prod\nafter: staging\n", "environments/prod/environment.yaml: after: Input should be a valid list"),
        ("name: prod\nafter: [Staging]\n", "environments/prod/environment.yaml: after.0: String should match pattern"),
        ("name: prod\nafter: [{x: 1}]\n", "environments/prod/environment.yaml: after.0:"),
    ],
)
def test_a_malformed_after_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_environment(text, "environments/prod/environment.yaml", "prod")
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_resolve_reads_the_graph_from_git(origin_factory: Callable[..., Origin], tmp_path: object) -> None:
    origin = origin_factory([dict(e) for e in GRAPH])
    clone = GitClone(origin.url, origin.path.parent / "cache")
    plan = clone.resolve(PromotionRequest(app="demo"))
    assert names(plan.environments) == ["dev", "staging-eu", "staging-us", "prod"]
    assert names(clone.resolve(PromotionRequest(app="demo", to_env="staging-us")).environments) == ["dev", "staging-us"]
    origin.commit({"environments/qa/environment.yaml": "name: qa\nafter: [staging]\n"}, "a typo in after")
    with pytest.raises(BadInput, match=r"^environments/qa/environment.yaml: after: unknown environment 'staging'"):
        clone.resolve(PromotionRequest(app="demo"))
