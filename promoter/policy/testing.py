"""`promoter policy test`: every `test_*` rule of every `*_test.rego`, evaluated by the embedded
engine, pass or fail each (a rule that is undefined or not true fails)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from promoter.policy import PolicyBundle, clean_error
from promoter.policy.embedded import EmbeddedEngine

_TEST = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True)
class TestResult:
    name: str  # data.<package>.<rule>
    passed: bool
    error: str = ""


def discover(bundle: PolicyBundle) -> list[str]:
    names: list[str] = []
    for path, text in sorted(bundle.modules.items()):
        if not path.endswith("_test.rego"):
            continue
        package = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("package ")), "")
        for rule in dict.fromkeys(_TEST.findall(text)):  # ordered, once each
            names.append(f"data.{package}.{rule}")
    return names


def run_tests(bundle: PolicyBundle, engine: EmbeddedEngine | None = None) -> list[TestResult]:
    engine = engine or EmbeddedEngine()
    results = []
    for name in discover(bundle):
        try:
            value = engine.query(bundle, name, {}, with_tests=True)
            results.append(TestResult(name, value is True, "" if value is True else f"got {value!r}"))
        except Exception as e:  # noqa: BLE001 - a test that errors fails, with the reason
            results.append(TestResult(name, False, clean_error(e)))
    return results
