"""The `opa-go` backend: OPA's own Go engine (`open-policy-agent/opa/v1/rego`), in process, through
PyPI's `opa-golib-python-bindings` (a c-shared build of OPA behind a ctypes wrapper).

It is the judge of our Rego: `promoter policy test` runs every test on it beside the embedded
engine, the parity tests compare both engines' decisions, and the OPA Data API stand-in of the tests
evaluates with it. It is optional: the package declares Python 3.14 (its code is plain ctypes and
runs on 3.11), so it is installed with `pip install --ignore-requires-python
opa-golib-python-bindings==0.4.4` and never required at run time. Evaluations are in-process and
carry no deadline of their own; use `embedded` or a real OPA server for production gates.
"""

from __future__ import annotations

import threading
from typing import Any

from promoter.errors import BadInput
from promoter.policy import DECISION, PolicyBundle, clean_error, register

INSTALL = "pip install --ignore-requires-python opa-golib-python-bindings==0.4.4"


def available() -> bool:
    try:
        import opa_bindings  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class GoOpaEngine:
    name = "opa-go"
    # `policy test` asks it every Rego test in one query: each query compiles the library again here
    # (0.27 s), whereas one query for them all costs a few seconds (promoter/policy/testing.py)
    tests_at_once = True

    def __init__(self, timeout_s: float = 10.0) -> None:
        if not available():
            raise BadInput(f"the opa-go policy engine needs OPA's Go engine: {INSTALL}")
        self.timeout_s = timeout_s  # kept for the factory's signature: the Go engine has no deadline here
        self._engines: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    def compiled(self, bundle: PolicyBundle, with_tests: bool = False) -> Any:
        """An OPA engine with the bundle's modules and data; compiled (and its errors raised) at once."""
        from opa_bindings import OpaEngine, OpaError

        key = (bundle.revision, with_tests)
        with self._lock:
            if key not in self._engines:
                engine = OpaEngine()
                try:
                    for path, text in sorted((bundle.modules if with_tests else bundle.policies()).items()):
                        engine.add_policy(f"policies/{path}", text)
                    engine.add_data(bundle.full_data())
                    engine.eval_query("true")  # compiles the whole bundle: OPA reports every error now
                except OpaError as e:
                    engine.close()
                    raise RuntimeError(clean_error(e)) from None
                for old in [k for k in self._engines if k[1] == with_tests]:
                    self._engines.pop(old).close()
                self._engines[key] = engine
            return self._engines[key]

    def query(self, bundle: PolicyBundle, rule: str, input_doc: dict[str, Any] | None, with_tests: bool = False) -> Any:
        """The value of `rule` (`data.a.b`); None when it is undefined."""
        from opa_bindings import OpaError, OpaUndefinedError

        engine = self.compiled(bundle, with_tests)
        try:
            return engine.eval_document(rule.removeprefix("data."), input_doc or {})
        except OpaUndefinedError:
            return None
        except OpaError as e:
            raise RuntimeError(clean_error(e)) from None

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        result = self.query(bundle, DECISION, input_doc)
        if result is None:
            raise RuntimeError(f"{DECISION} is undefined (is policies/promoter/decision.rego there?)")
        decision: dict[str, Any] = result
        return decision

    def warm(self, bundle: PolicyBundle) -> None:
        self.compiled(bundle)

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()


@register("opa-go")
def _factory(timeout_s: float = 10.0) -> GoOpaEngine:
    return GoOpaEngine(timeout_s=timeout_s)
