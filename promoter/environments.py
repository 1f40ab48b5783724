"""environment.yaml: its text read into its model, every mistake one line naming the file and the
key; the environments in the order a promotion goes through them (a line by `order`, or a graph by
`after`), and what each one waits for. Light on imports (no git), so `promoter policy check` stays fast."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from promoter import yamlsafe
from promoter.errors import BadInput
from promoter.models import ClusterConfig, EnvironmentConfig, PlannedEnvironment
from promoter.names import ENVIRONMENTS


def parse_environment(text: str, where: str, name: str) -> EnvironmentConfig:
    """environment.yaml's text → its model; every mistake is one line naming the file and the key."""
    raw = yamlsafe.load(text, where)
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        config = EnvironmentConfig.model_validate(raw)
    except ValidationError as e:
        raise BadInput(format_validation_error(where, e)) from None
    if config.name != name:
        raise BadInput(f"{where}: name is '{config.name}' but the folder is '{name}'; make them equal")
    if "cluster" in raw and "clusters" in raw:
        raise BadInput(f"{where}: clusters: given beside cluster; use cluster for one cluster or clusters for several")
    if config.waves is not None:
        waves(config, where)
    for check in config.verify if config.clusters is None else []:
        text = check.prometheus.query if check.prometheus else check.http.url if check.http else ""
        if re.search(r"\{\{\s*cluster\s*\}\}", text):
            raise BadInput(
                f"{where}: verify: {check.name} names {{{{cluster}}}}, which only an environment with clusters has"
            )
    return config


def waves(config: EnvironmentConfig, where: str = "") -> list[list[ClusterConfig]]:
    """The clusters of `config` in their waves: `waves.size` at a time in the listed order, or its
    `groups`; without `waves`, one wave of every cluster. A group naming an unknown context, a context
    twice or leaving one out is bad input, one line naming the file."""
    where = where or _file(config.name)
    targets = config.targets()
    if config.waves is None:
        return [targets]
    if config.clusters is None:
        raise BadInput(f"{where}: waves: needs clusters (a list of several); with one cluster there are no waves")
    if config.waves.size is not None:
        size = config.waves.size
        return [targets[i : i + size] for i in range(0, len(targets), size)]
    by_context = {str(c.context): c for c in targets}
    named = [context for group in config.waves.groups or [] for context in group]
    for context in named:
        if context not in by_context:
            raise BadInput(f"{where}: waves.groups: unknown context '{context}'; clusters: {', '.join(by_context)}")
    if len(set(named)) != len(named):
        raise BadInput(f"{where}: waves.groups: a cluster is named twice; name each once")
    left = [c for c in by_context if c not in named]
    if left:
        raise BadInput(f"{where}: waves.groups: {', '.join(left)} in no wave; name every cluster once")
    return [[by_context[c] for c in group] for group in config.waves.groups or []]


def load_environment(path: Path, name: str) -> EnvironmentConfig:
    if not path.is_file():
        raise BadInput(f"{path} does not exist; is '{name}' an environment of this repository?")
    return parse_environment(path.read_text(), str(path), name)


def format_validation_error(where: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key; remove it or fix its spelling"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {loc}: {msg}{more}"


def in_order(configs: list[EnvironmentConfig]) -> list[PlannedEnvironment]:
    """The environments as a promotion goes through them, the source first: by `order` (two with the same
    order are bad input), or, when any names an `after`, as a graph (`graph_order`)."""
    if not configs:
        raise BadInput("no environments: environments/<name>/environment.yaml is missing on main")
    if any(cfg.after is not None for cfg in configs):
        return [PlannedEnvironment(config=cfg) for cfg in graph_order(configs)]
    by_order: dict[int, str] = {}
    for cfg in configs:
        if cfg.order is None:
            raise BadInput(
                f"{_file(cfg.name)}: order: missing; give each environment a distinct order, "
                "or name the environments each one comes after (`after`)"
            )
        if cfg.order in by_order:
            raise BadInput(
                f"environments '{by_order[cfg.order]}' and '{cfg.name}' both have order "
                f"{cfg.order}; give each environment a distinct order"
            )
        by_order[cfg.order] = cfg.name
    return [PlannedEnvironment(config=cfg) for cfg in sorted(configs, key=lambda c: c.order or 0)]


def graph_order(configs: list[EnvironmentConfig]) -> list[EnvironmentConfig]:
    """A graph's environments, each after every environment it names in `after`: by their distance from
    the source, then by name. Bad input, one line naming the file: `order` beside `after`, an unknown
    name, an environment named twice or after itself, a second source, a cycle."""
    by_name = {cfg.name: cfg for cfg in configs}
    graph = next(cfg.name for cfg in configs if cfg.after is not None)
    for cfg in configs:
        if cfg.order is not None:
            raise BadInput(
                f"{_file(cfg.name)}: order: the environments are a graph ({_file(graph)} has `after`); "
                "use one or the other: remove order here, or give every environment an order and no after"
            )
        for up in cfg.after or []:
            if up == cfg.name:
                raise BadInput(f"{_file(cfg.name)}: after: names {up} itself; name the environments before it")
            if up not in by_name:
                raise BadInput(
                    f"{_file(cfg.name)}: after: unknown environment '{up}'; environments: {', '.join(sorted(by_name))}"
                )
        if len(set(cfg.after or [])) != len(cfg.after or []):
            raise BadInput(f"{_file(cfg.name)}: after: names an environment twice; name each once")
    sources = sorted(cfg.name for cfg in configs if not cfg.after)
    if len(sources) > 1:
        raise BadInput(
            f"{_file(sources[1])}: after: missing; {' and '.join(sources[:2])} both come after nothing, and a "
            "repository has one source: name the environments it takes a version from"
        )
    depth: dict[str, int] = {}
    while len(depth) < len(configs):
        ready = [c.name for c in configs if c.name not in depth and all(u in depth for u in c.after or [])]
        if not ready:
            raise BadInput(_cycle(by_name, depth))
        for name in ready:
            depth[name] = 1 + max((depth[u] for u in by_name[name].after or []), default=-1)
    return sorted(configs, key=lambda c: (depth[c.name], c.name))


def _cycle(by_name: dict[str, EnvironmentConfig], placed: dict[str, int]) -> str:
    """The line for environments no version can reach: one cycle among them, in the direction versions
    flow. Each one not placed waits for another one not placed, so walking upstream must repeat."""
    name = sorted(n for n in by_name if n not in placed)[0]
    walked: list[str] = []
    while name not in walked:
        walked.append(name)
        name = sorted(u for u in by_name[name].after or [] if u not in placed)[0]
    loop = walked[walked.index(name) :]
    flow = " → ".join([loop[0], *reversed(loop[1:]), loop[0]])  # each one comes after the one before it
    return (
        f"{_file(loop[0])}: after: a cycle ({flow}): no version can reach these environments; "
        "remove one of the names so that every environment is reached from the source"
    )


def _file(env: str) -> str:
    return f"{ENVIRONMENTS}/{env}/environment.yaml"


def is_graph(envs: Sequence[PlannedEnvironment]) -> bool:
    """Whether these environments stand in a graph (`after`) rather than a line (`order`)."""
    return any(e.config.after is not None for e in envs)


def upstreams(envs: Sequence[PlannedEnvironment]) -> dict[str, list[str]]:
    """What each environment waits for (healthy and soaked there): in a line the one before it, in a
    graph every one its `after` names; the source waits for nothing."""
    names = [e.config.name for e in envs]
    if not is_graph(envs):
        return {name: names[i - 1 : i] if i else [] for i, name in enumerate(names)}
    return {e.config.name: list(e.config.after or []) for e in envs}


def levels(envs: Sequence[PlannedEnvironment]) -> dict[str, int]:
    """Each environment's place: its `order` in a line; in a graph 1 for the source, and one more than
    the furthest of its upstreams for the others (environments that run side by side share one)."""
    if not is_graph(envs):
        return {e.config.name: e.config.order or 0 for e in envs}
    ups, level = upstreams(envs), dict[str, int]()
    for e in envs:  # in graph order: every upstream is placed first
        level[e.config.name] = 1 + max((level[u] for u in ups[e.config.name]), default=0)
    return level


def path_line(envs: Sequence[PlannedEnvironment]) -> str:
    """The environments as one line, each place after the one before: `dev → staging → prod`, and in
    a graph side-by-side ones joined: `dev → staging-eu ∥ staging-us → prod`."""
    by_level: dict[int, list[str]] = {}
    for name, level in levels(envs).items():
        by_level.setdefault(level, []).append(name)
    return " → ".join(" ∥ ".join(by_level[level]) for level in sorted(by_level))


def up_to(envs: list[PlannedEnvironment], to_env: str) -> list[PlannedEnvironment]:
    """The environments a promotion `--to to_env` goes through: in a line those up to it, in a graph
    those on some path from the source to it (in the same order)."""
    names = [e.config.name for e in envs]
    if not is_graph(envs):
        return envs[: names.index(to_env) + 1]
    ups, wanted, todo = upstreams(envs), {to_env}, [to_env]
    while todo:
        for up in ups[todo.pop()]:
            if up not in wanted:
                wanted.add(up)
                todo.append(up)
    return [e for e in envs if e.config.name in wanted]


def last(envs: Sequence[PlannedEnvironment]) -> str | None:
    """The environment a plan goes `--to`: the last of a line; in a graph the one that every other
    environment of the plan leads to, None when the plan ends in several (it went to every one)."""
    if not is_graph(envs):
        return envs[-1].config.name
    ups = upstreams(envs)
    led = {up for names in ups.values() for up in names}
    ends = [e.config.name for e in envs if e.config.name not in led]
    return ends[0] if len(ends) == 1 else None
