"""The embedded backend: Microsoft's Rust Rego engine regorus (PyPI gordon-to-regorus), on this machine.

Chosen by evidence (README, "Choosing the embedded engine"): it passes the whole policy test suite,
`with input as` included, where regopy 1.5.2 fails every test that calls a builtin under `with` and
crashes the interpreter when such a result is printed.

Each compiled policy revision lives in its own small process (forked from a clean fork server), kept
and reused across evaluations. Two properties of the binding make that necessary: an evaluation holds
the GIL for as long as it runs, so no thread could enforce a deadline, and an engine may only be
used on the thread that made it. A process can be killed: an evaluation that outlives its deadline is
a denial, its process is ended, and the next evaluation starts a fresh one.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import threading
from collections import OrderedDict
from typing import Any

from promoter.policy import DECISION, PolicyBundle, clean_error, register


class PolicyLoadError(Exception):
    pass


def _serve(conn: multiprocessing.connection.Connection, modules: dict[str, str], data: dict[str, Any]) -> None:
    """The engine process: compile once, then answer (rule, input JSON) until the pipe closes."""
    import regorus

    engine = regorus.Engine()
    try:
        for path, text in sorted(modules.items()):
            try:
                engine.add_policy(f"policies/{path}", text)
            except Exception as e:  # noqa: BLE001
                raise PolicyLoadError(f"policies/{path}: {clean_error(e)}") from None
        engine.add_data(data)
    except Exception as e:  # noqa: BLE001
        conn.send(("error", str(e)))
        return
    conn.send(("ok", None))
    while True:
        try:
            rule, input_json = conn.recv()
        except (EOFError, OSError):
            return
        try:
            engine.set_input_json(input_json)
            conn.send(("ok", engine.eval_rule_as_json(rule)))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", clean_error(e)))


_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["promoter.policy.embedded"])


class _Compiled:
    def __init__(self, bundle: PolicyBundle, with_tests: bool, timeout_s: float) -> None:
        modules = bundle.modules if with_tests else bundle.policies()
        self.conn, child = _context.Pipe()
        self.process = _context.Process(target=_serve, args=(child, modules, bundle.full_data()), daemon=True,
                                        name="promoter-rego")
        self.process.start()
        child.close()
        self.lock = threading.Lock()
        # compiling is allowed more time than one evaluation: it happens once per revision
        status, detail = self._receive(max(timeout_s, 30.0), "loading the policies")
        if status != "ok":
            self.close()
            raise PolicyLoadError(detail)

    def _receive(self, timeout_s: float, what: str) -> tuple[str, Any]:
        if not self.conn.poll(timeout_s):
            self.close()
            raise TimeoutError(f"{what} did not finish within {timeout_s:g}s")
        try:
            answer: tuple[str, Any] = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"the policy engine process ended while {what}") from None
        return answer

    def run(self, rule: str, input_doc: dict[str, Any], timeout_s: float) -> Any:
        with self.lock:
            self.conn.send((rule, json.dumps(input_doc)))
            status, detail = self._receive(timeout_s, rule)
        if status != "ok":
            raise RuntimeError(detail)
        return json.loads(detail)

    def close(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()


class EmbeddedEngine:
    name = "embedded"

    def __init__(self, timeout_s: float = 10.0, cache_size: int = 4) -> None:
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, bool], _Compiled] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size

    def compiled(self, bundle: PolicyBundle, with_tests: bool = False) -> _Compiled:
        key = (bundle.revision, with_tests)
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None and found.alive:
                self._cache.move_to_end(key)
                return found
        compiled = _Compiled(bundle, with_tests, self.timeout_s)  # outside the lock: compiling takes a while
        with self._cache_lock:
            old = self._cache.pop(key, None)
            self._cache[key] = compiled
            evicted = [self._cache.popitem(last=False)[1] for _ in range(len(self._cache) - self._cache_size)]
        for c in ([old] if old else []) + evicted:
            c.close()
        return compiled

    def query(self, bundle: PolicyBundle, rule: str, input_doc: dict[str, Any] | None,
              with_tests: bool = False) -> Any:
        compiled = self.compiled(bundle, with_tests)
        return compiled.run(rule, input_doc if input_doc is not None else {}, self.timeout_s)

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        if not any(text.lstrip().startswith("package promoter\n") or "\npackage promoter\n" in text
                   for text in bundle.policies().values()):
            raise PolicyLoadError(
                "policies/ has no package promoter, so no decision; add policies/promoter/decision.rego"
            )
        result: dict[str, Any] = self.query(bundle, DECISION, input_doc)
        return result

    def close(self) -> None:
        with self._cache_lock:
            compiled, self._cache = list(self._cache.values()), OrderedDict()
        for c in compiled:
            c.close()


@register("embedded")
def _factory(timeout_s: float = 10.0) -> EmbeddedEngine:
    return EmbeddedEngine(timeout_s=timeout_s)
