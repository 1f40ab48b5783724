"""`promoter policy test`: every `test_*` rule of every `*_test.rego`, evaluated by each engine that
can run here: the embedded engine (regorus) and, when it is installed, OPA's own Go engine (`opa-go`).
A test passes when it is true on every engine; a test that passes on one and fails on the other
fails (the library must mean the same thing to both).

Speed, with the same verdicts: the tests run by the top folder of their file (`kubernetes/`,
`promoter/`, ...), each folder's with the whole library and the test modules it refers to
(`data.lib.fixtures_test`), never another folder's tests, which a test of the decision would
otherwise evaluate whole (`roots["kubernetes"] := data.kubernetes` holds every kubernetes test
package when tests are loaded: 0.5 s a test on regorus instead of 0.03 s). On an engine that compiles
the library for every query (OPA's Go engine, `tests_at_once`) a folder's tests are one query; a test
that is not true is then asked alone, for its value or its error. The engines run side by side."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from promoter.policy import PolicyBundle, clean_error

_TEST = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)
_TEST_PACKAGE = re.compile(r"\bdata\.((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*_test)\b")
_ALL = "promoter_all_tests"  # the package of the module that names every test that is true


@dataclass(frozen=True)
class TestResult:
    name: str  # data.<package>.<rule>
    passed: bool  # on every engine
    error: str = ""  # the first engine's reason to fail it
    engines: dict[str, bool] = field(default_factory=dict)


def _package(text: str) -> str:
    return next((ln.split()[1] for ln in text.splitlines() if ln.startswith("package ")), "")


def discover(bundle: PolicyBundle) -> list[str]:
    names: list[str] = []
    for path, text in sorted(bundle.modules.items()):
        if not path.endswith("_test.rego"):
            continue
        package = _package(text)
        for rule in dict.fromkeys(_TEST.findall(text)):  # ordered, once each
            names.append(f"data.{package}.{rule}")
    return names


def test_engines() -> list[Any]:
    """The embedded engine, and OPA's Go engine when it is installed."""
    from promoter.policy.embedded import EmbeddedEngine
    from promoter.policy.goopa import GoOpaEngine, available

    return [EmbeddedEngine(), *([GoOpaEngine()] if available() else [])]


def groups(bundle: PolicyBundle) -> list[tuple[PolicyBundle, list[str]]]:
    """(a bundle, the tests to run on it) per top folder of the test files: every module that is not a
    test, that folder's test modules, and the test modules they refer to (`data.x_test`, transitively)."""
    tests = {p: t for p, t in bundle.modules.items() if p.endswith("_test.rego")}
    by_package: dict[str, list[str]] = {}
    for path, text in tests.items():
        by_package.setdefault(_package(text), []).append(path)
    found: list[tuple[PolicyBundle, list[str]]] = []
    for folder in sorted({p.split("/")[0] if "/" in p else "" for p in tests}):
        own = sorted(p for p in tests if (p.split("/")[0] if "/" in p else "") == folder)
        wanted, todo = set(own), list(own)
        while todo:
            for package in _TEST_PACKAGE.findall(tests[todo.pop()]):
                for path in by_package.get(package, []):
                    if path not in wanted:
                        wanted.add(path)
                        todo.append(path)
        names = discover(PolicyBundle(modules={p: tests[p] for p in own}, data={}))
        if names:  # a folder of fixtures alone (lib/fixtures_test.rego) runs with the folders using it
            modules = {**bundle.policies(), **{p: tests[p] for p in sorted(wanted)}}
            found.append((PolicyBundle(modules=modules, data=bundle.data, metadata=bundle.metadata), names))
    return found


def _all_tests(bundle: PolicyBundle, names: list[str]) -> PolicyBundle:
    lines = "".join(f'passed contains "{n}" if {n} == true\n' for n in names)
    module = f"package {_ALL}\n\nimport rego.v1\n\n{lines}"
    return PolicyBundle(
        modules={**bundle.modules, f"{_ALL}_test.rego": module}, data=bundle.data, metadata=bundle.metadata
    )


def _one(engine: Any, bundle: PolicyBundle, name: str) -> tuple[bool, str]:
    """One test on its own, for its reason to fail."""
    try:
        value = engine.query(bundle, name, {}, with_tests=True)
        return value is True, "" if value is True else f"got {value!r}"
    except Exception as e:  # noqa: BLE001 - a test that errors fails, with the reason
        return False, clean_error(e)


def _verdicts(engine: Any, parts: list[tuple[PolicyBundle, list[str]]]) -> dict[str, tuple[bool, str]]:
    """Every test's verdict on `engine`: on an engine `tests_at_once`, one query per part for its
    tests, then each test that is not true asked alone, which names its value or its error (an error
    in one test fails the whole query: then each test is asked alone); on another, each alone."""
    verdicts: dict[str, tuple[bool, str]] = {}
    for bundle, names in parts:
        passed: set[str] = set()
        if getattr(engine, "tests_at_once", False):
            try:
                query = f"data.{_ALL}.passed"
                passed = set(engine.query(_all_tests(bundle, names), query, {}, with_tests=True) or [])
            except Exception:  # noqa: BLE001 - asked one by one below, each naming its own error
                passed = set()
        for name in names:
            verdicts[name] = (True, "") if name in passed else _one(engine, bundle, name)
    return verdicts


def run_tests(bundle: PolicyBundle, engines: list[Any] | None = None) -> list[TestResult]:
    engines = engines if engines is not None else test_engines()
    parts = groups(bundle)
    # side by side: the embedded engine evaluates in its own process, OPA's Go engine in Go (ctypes
    # lets go of the GIL), so the run takes about as long as the slower engine alone
    with ThreadPoolExecutor(max_workers=max(1, len(engines))) as pool:
        runs = [pool.submit(_verdicts, engine, parts) for engine in engines]
        by_engine = {engine.name: run.result() for engine, run in zip(engines, runs, strict=True)}
    results = []
    for name in discover(bundle):
        found = {e: verdicts[name] for e, verdicts in by_engine.items()}
        named = len(found) > 1
        errors = [f"{engine}: {why}" if named else why for engine, (ok, why) in found.items() if not ok]
        results.append(TestResult(name, not errors, "; ".join(errors), {e: ok for e, (ok, _) in found.items()}))
    return results
