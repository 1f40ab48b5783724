"""environment.yaml: its text read into its model, every mistake one line naming the file and the
key. Light on imports (no git), so `promoter policy check` stays fast."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from promoter import yamlsafe
from promoter.errors import BadInput
from promoter.models import EnvironmentConfig, PlannedEnvironment


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
    return config


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
