"""`promoter policy test`: every `test_*` rule of every `*_test.rego`, evaluated by each engine that
can run here: the embedded engine (regorus) and, when it is installed, OPA's own Go engine (`opa-go`).
A test passes when it is true on every engine; a test that passes on one and fails on the other
fails (the library must mean the same thing to both)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from promoter.policy import PolicyBundle, clean_error

_TEST = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True)
class TestResult:
    name: str  # data.<package>.<rule>
    passed: bool  # on every engine
    error: str = ""  # the first engine's reason to fail it
    engines: dict[str, bool] = field(default_factory=dict)


def discover(bundle: PolicyBundle) -> list[str]:
    names: list[str] = []
    for path, text in sorted(bundle.modules.items()):
        if not path.endswith("_test.rego"):
            continue
        package = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("package ")), "")
        for rule in dict.fromkeys(_TEST.findall(text)):  # ordered, once each
            names.append(f"data.{package}.{rule}")
    return names


def test_engines() -> list[Any]:
    """The embedded engine, and OPA's Go engine when it is installed."""
    from promoter.policy.embedded import EmbeddedEngine
    from promoter.policy.goopa import GoOpaEngine, available

    return [EmbeddedEngine(), *([GoOpaEngine()] if available() else [])]


def run_tests(bundle: PolicyBundle, engines: list[Any] | None = None) -> list[TestResult]:
    engines = engines if engines is not None else test_engines()
    verdicts: dict[str, dict[str, tuple[bool, str]]] = {}
    for engine in engines:
        for name in discover(bundle):
            try:
                value = engine.query(bundle, name, {}, with_tests=True)
                verdict = (value is True, "" if value is True else f"got {value!r}")
            except Exception as e:  # noqa: BLE001 - a test that errors fails, with the reason
                verdict = (False, clean_error(e))
            verdicts.setdefault(name, {})[engine.name] = verdict
    results = []
    for name, by_engine in verdicts.items():
        named = len(by_engine) > 1
        errors = [f"{engine}: {why}" if named else why for engine, (ok, why) in by_engine.items() if not ok]
        results.append(TestResult(name, not errors, "; ".join(errors), {e: ok for e, (ok, _) in by_engine.items()}))
    return results
