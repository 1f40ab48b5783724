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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from promoter.policy import DECISION, EngineFault, PolicyBundle, clean_error, register


class PolicyLoadError(Exception):
    pass


def _compile(modules: dict[str, str], data: dict[str, Any]) -> Any:
    """A regorus engine holding `modules` and `data`; a module that does not compile is a
    `PolicyLoadError` naming its file."""
    import regorus

    engine = regorus.Engine()
    for path, text in sorted(modules.items()):
        try:
            engine.add_policy(f"policies/{path}", text)
        except Exception as e:  # noqa: BLE001 - the engine's own errors, made one line naming the file
            raise PolicyLoadError(f"policies/{path}: {clean_error(e)}") from None
    engine.add_data(data)
    return engine


def _require_decision(bundle: PolicyBundle) -> None:
    if not any(
        text.lstrip().startswith("package promoter\n") or "\npackage promoter\n" in text
        for text in bundle.policies().values()
    ):
        raise PolicyLoadError("policies/ has no package promoter, so no decision; add policies/promoter/decision.rego")


def _serve(conn: multiprocessing.connection.Connection, modules: dict[str, str], data: dict[str, Any]) -> None:
    """The engine process: compile once, then answer (rule, input JSON) until the pipe closes."""
    try:
        engine = _compile(modules, data)
    except Exception as e:  # noqa: BLE001 - sent to the parent, which raises it (unsent: a dead process)
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
        except Exception as e:  # noqa: BLE001 - this request's answer; the engine serves on
            conn.send(("error", clean_error(e)))


_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["promoter.policy.embedded"])


class _Retired(Exception):
    """The compiled revision was closed (evicted, or ended by a timeout) before this use of it."""


class _Compiled:
    """One compiled revision in its process. `lock` serialises the pipe; `close()` takes it too, so
    a process is never ended under an evaluation that is using it."""

    def __init__(self, bundle: PolicyBundle, with_tests: bool, timeout_s: float) -> None:
        modules = bundle.modules if with_tests else bundle.policies()
        self.conn, child = _context.Pipe()
        self.process = _context.Process(
            target=_serve, args=(child, modules, bundle.full_data()), daemon=True, name="promoter-rego"
        )
        self.process.start()
        child.close()
        self.lock = threading.Lock()
        self.closed = False
        # compiling is allowed more time than one evaluation: it happens once per revision
        with self.lock:
            status, detail = self._receive(max(timeout_s, 30.0), "loading the policies")
        if status != "ok":
            self.close()
            raise PolicyLoadError(detail)

    def _receive(self, timeout_s: float, what: str) -> tuple[str, Any]:
        """An answer within `timeout_s` (the caller holds `lock`). A policy that runs too long is the
        policies' fault: TimeoutError, and the process is ended. A process that dies is ours."""
        try:
            ready = self.conn.poll(timeout_s)
            answer: tuple[str, Any] | None = self.conn.recv() if ready else None
        except (EOFError, OSError) as e:
            self._end()
            raise EngineFault(f"the policy engine process ended while {what} ({type(e).__name__}); retrying") from None
        if answer is None:
            self._end()
            raise TimeoutError(f"{what} did not finish within {timeout_s:g}s")
        return answer

    def run(self, rule: str, input_doc: dict[str, Any], timeout_s: float) -> Any:
        payload = json.dumps(input_doc)
        with self.lock:
            if self.closed:
                raise _Retired()
            with self._exchange():
                try:
                    self.conn.send((rule, payload))
                except OSError as e:
                    self._end()
                    raise EngineFault(f"the policy engine process is gone ({type(e).__name__}); retrying") from None
                status, detail = self._receive(timeout_s, rule)
        if status != "ok":
            raise RuntimeError(detail)
        return json.loads(detail)

    @contextmanager
    def _exchange(self) -> Iterator[None]:
        """A question and its answer (the caller holds `lock`). Anything raised in between (an
        activity's cancel, which the SDK raises into the thread at any point) ends the process: its
        answer would be left in the pipe for the next evaluation, another promotion's, to read."""
        try:
            yield
        except BaseException:
            # not just Exception: whatever cuts the exchange short (SystemExit too) leaves its answer unread
            if not self.closed:
                self._end()
            raise

    def _end(self) -> None:
        """End the process (the caller holds `lock`)."""
        self.closed = True
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def close(self) -> None:
        with self.lock:  # waits for an evaluation in flight to answer (or time out)
            if not self.closed:
                self._end()

    @property
    def alive(self) -> bool:
        return not self.closed and self.process.is_alive()


class EmbeddedEngine:
    """Compiled revisions, shared by every thread of the worker. One thread compiles a revision while
    the others wait for it (a lock per revision); an evicted revision is closed only once no
    evaluation is using it, and a use that finds it closed compiles it again."""

    name = "embedded"

    def __init__(self, timeout_s: float = 10.0, cache_size: int = 4) -> None:
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, bool], _Compiled] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._compiling: dict[tuple[str, bool], threading.Lock] = {}  # one small lock per revision ever seen
        self._cache_size = cache_size

    def _cached(self, key: tuple[str, bool]) -> _Compiled | None:
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None and found.alive:
                self._cache.move_to_end(key)
                return found
            return None

    def compiled(self, bundle: PolicyBundle, with_tests: bool = False) -> _Compiled:
        key = (bundle.revision, with_tests)
        found = self._cached(key)
        if found is not None:
            return found
        with self._cache_lock:
            gate = self._compiling.setdefault(key, threading.Lock())
        with gate:  # compiling takes a while: one thread does it, the others then find it cached
            found = self._cached(key)
            if found is not None:
                return found
            compiled = _Compiled(bundle, with_tests, self.timeout_s)
            with self._cache_lock:
                dead = self._cache.pop(key, None)
                self._cache[key] = compiled
                evicted = [self._cache.popitem(last=False)[1] for _ in range(len(self._cache) - self._cache_size)]
        for c in ([dead] if dead else []) + evicted:
            c.close()
        return compiled

    def query(self, bundle: PolicyBundle, rule: str, input_doc: dict[str, Any] | None, with_tests: bool = False) -> Any:
        for _ in range(3):
            compiled = self.compiled(bundle, with_tests)
            try:
                return compiled.run(rule, input_doc if input_doc is not None else {}, self.timeout_s)
            except _Retired:
                continue  # evicted or ended between the lookup and the use: compile it again
        raise EngineFault("the policy engine kept closing under this evaluation; retrying")

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        _require_decision(bundle)
        result: dict[str, Any] = self.query(bundle, DECISION, input_doc)
        return result

    def warm(self, bundle: PolicyBundle) -> None:
        self.compiled(bundle)

    def close(self) -> None:
        with self._cache_lock:
            compiled, self._cache = list(self._cache.values()), OrderedDict()
        for c in compiled:
            c.close()


class InProcessEngine:
    """regorus on this thread, for one-shot commands (`promoter policy check`, `eval`): no fork
    server and no engine process to start, so a pre-commit check answers in a blink. It carries no
    deadline (Ctrl-C ends it); the worker always uses `EmbeddedEngine`, whose evaluations can be killed."""

    name = "embedded"

    def __init__(self) -> None:
        self._compiled: tuple[str, Any] | None = None

    def _engine(self, bundle: PolicyBundle) -> Any:
        if self._compiled is None or self._compiled[0] != bundle.revision:
            self._compiled = (bundle.revision, _compile(bundle.policies(), bundle.full_data()))
        return self._compiled[1]

    def warm(self, bundle: PolicyBundle) -> None:
        self._engine(bundle)

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        _require_decision(bundle)
        engine = self._engine(bundle)
        engine.set_input_json(json.dumps(input_doc))
        try:
            result: dict[str, Any] = json.loads(engine.eval_rule_as_json(DECISION))
        except Exception as e:  # noqa: BLE001 - a policy error: the caller denies, naming it
            raise RuntimeError(clean_error(e)) from None
        return result


@register("embedded")
def _factory(timeout_s: float = 10.0) -> EmbeddedEngine:
    return EmbeddedEngine(timeout_s=timeout_s)
