"""The embedded backend: Microsoft's Rust Rego engine regorus, in-process (PyPI gordon-to-regorus).

Chosen by evidence (README, "Choosing the embedded engine"): it passes the whole policy test suite,
`with input as` included, where regopy 1.5.2 fails every test that calls a builtin under `with` and
crashes the interpreter when such a result is printed.

A compiled engine is kept per policy revision and reused. The binding's engine may only be used, and
dropped, on the thread that made it, so each compiled engine owns one thread that compiles it, runs
its evaluations one at a time, and finally releases it. An evaluation that outlives its deadline is
a denial, and its engine is dropped so the next evaluation starts on a fresh one (the stuck native
call ends in its own time, on its own thread).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import json
import queue
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import regorus

from promoter.policy import DECISION, PolicyBundle, clean_error, register

_STOP = object()


class PolicyLoadError(Exception):
    pass


class _Compiled:
    def __init__(self, bundle: PolicyBundle, with_tests: bool, timeout_s: float) -> None:
        self.engine: Any = None
        self._jobs: queue.SimpleQueue[tuple[Any, concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="rego", daemon=True)
        self._thread.start()
        _live.add(self)
        try:
            self.call(self._compile, bundle, with_tests).result(timeout=timeout_s)
        except BaseException:
            self.close()
            raise

    def _loop(self) -> None:
        while True:
            job, future = self._jobs.get()
            if job is _STOP:
                self.engine = None  # released on its own thread, as the binding requires
                future.set_result(None)
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    future.set_exception(e)

    def call(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((functools.partial(fn, *args), future))
        return future

    def _compile(self, bundle: PolicyBundle, with_tests: bool) -> None:
        engine = regorus.Engine()
        modules = bundle.modules if with_tests else bundle.policies()
        for path, text in sorted(modules.items()):
            try:
                engine.add_policy(f"policies/{path}", text)
            except Exception as e:  # noqa: BLE001
                raise PolicyLoadError(f"policies/{path}: {clean_error(e)}") from None
        engine.add_data(bundle.full_data())
        self.engine = engine

    def run(self, rule: str, input_doc: dict[str, Any]) -> Any:
        self.engine.set_input(input_doc)
        return json.loads(self.engine.eval_rule_as_json(rule))

    def close(self, wait_s: float = 0.0) -> None:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((_STOP, future))
        if wait_s:
            concurrent.futures.wait([future], timeout=wait_s)


_live: weakref.WeakSet[_Compiled] = weakref.WeakSet()


def _release_all() -> None:
    for compiled in list(_live):
        compiled.close(wait_s=1.0)


# before interpreter teardown would drop the engines on the main thread
getattr(threading, "_register_atexit", atexit.register)(_release_all)


class EmbeddedEngine:
    name = "embedded"

    def __init__(self, timeout_s: float = 10.0, cache_size: int = 8) -> None:
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, bool], _Compiled] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size

    def compiled(self, bundle: PolicyBundle, with_tests: bool = False) -> _Compiled:
        key = (bundle.revision, with_tests)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        compiled = _Compiled(bundle, with_tests, self.timeout_s)  # outside the lock: compiling takes a while
        with self._cache_lock:
            self._cache[key] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)[1].close()
        return compiled

    def _drop(self, compiled: _Compiled) -> None:
        with self._cache_lock:
            for key, value in list(self._cache.items()):
                if value is compiled:
                    del self._cache[key]
        compiled.close()

    def query(self, bundle: PolicyBundle, rule: str, input_doc: dict[str, Any] | None,
              with_tests: bool = False) -> Any:
        compiled = self.compiled(bundle, with_tests)
        future = compiled.call(compiled.run, rule, input_doc if input_doc is not None else {})
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            self._drop(compiled)
            raise TimeoutError(f"{rule} did not finish within {self.timeout_s:g}s") from None

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        if not any(text.lstrip().startswith("package promoter\n") or "\npackage promoter\n" in text
                   for text in bundle.policies().values()):
            raise PolicyLoadError(
                "policies/ has no package promoter, so no decision; add policies/promoter/decision.rego"
            )
        result: dict[str, Any] = self.query(bundle, DECISION, input_doc)
        return result


@register("embedded")
def _factory(timeout_s: float = 10.0) -> EmbeddedEngine:
    return EmbeddedEngine(timeout_s=timeout_s)
