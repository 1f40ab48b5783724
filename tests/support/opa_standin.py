"""A stand-in OPA server on loopback that speaks OPA's REST Policy and Data APIs, for the `opa`
backend's tests.

No OPA server binary installs from PyPI here, so this server keeps its policies and data as OPA's
store does and evaluates them with OPA's own Go engine (`opa_bindings`, PyPI's
`opa-golib-python-bindings`): the `opa` backend is tested against OPA's semantics, never against the
embedded engine it is compared with. It starts empty, or with the files of a policies folder loaded
as `opa run -s --ignore '*_test.rego' policies/` would load them (each module under its path as its
id, `data.yaml` at the root of `data`), e.g. a stale copy planted to show it is not what judges.

What it implements, as OPA does:
- `PUT /v1/policies/{id}` (Rego text; 200 `{}`), `DELETE /v1/policies/{id}` (200 `{}`; 404 when
  there is no such module), `GET /v1/policies` (`{"result": [{"id", "raw", "ast"}]}`, the AST as
  OPA's `rego.parse_module` gives it, which is OPA's JSON of the parsed module) and
  `GET /v1/policies/{id}`. Every change compiles all the modules with all the data, and one that does
  not compile (a parse error, an undefined function, a conflict) is refused, 400, nothing changed.
- `PUT /v1/data/{path}` (a JSON document; the objects on the way are created; 204),
  `DELETE /v1/data/{path}` (204; 404 when nothing is there), `GET /v1/data/{path}` (the document,
  rules evaluated; `{}` without "result" when undefined).
- `POST /v1/data/{path}` with `{"input": ...}`: `{"result": ...}`, no "result" key when undefined. A
  query's error (with `?strict-builtin-errors=true`, a builtin's error too) is a 500 with OPA's body
  `{"code": "internal_error", "message": ..., "errors": [{"code", "message", "location"}]}`.
- Every query sees the store as it was when it started (a snapshot): the modules and data of one
  moment, never half a write. Writes are applied one at a time.
- `GET /health`. With `token`, every request without `Authorization: Bearer <token>` is refused 401.

Where it differs from a real OPA server:
- OPA's Go engine behind these bindings always evaluates with strict builtin errors; it has no
  switch. A query *without* `strict-builtin-errors` whose evaluation hits a builtin error is refused
  400 saying so, where OPA would carry on with that expression undefined (and could allow).
- A compile error's body has one entry in `errors`, with OPA's text as its message (OPA lists each
  error with its location).
- The token is compared directly; OPA checks tokens only through an authorization policy
  (`--authorization=basic` and `system.authz`).
- No bundles, no decision logs, no Query, Compile or Config APIs, no PATCH, no `If-None-Match`, no
  query parameters but `strict-builtin-errors` (explain, metrics, provenance, pretty are ignored).
- `delay_s` and `fail_with` simulate a slow or failing server (on queries only); `before_write`, when
  set, is called with the method and path of each write before it is applied (outside the write lock),
  so that a test can look at the store between any two writes of a worker.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from opa_bindings import OpaEngine, OpaError

from promoter.policy import PolicyBundle

_LOCATED = re.compile(r"^(?:\w+: )?(?P<file>[^\s:]+):(?P<row>\d+): (?P<code>[a-z_]+): (?P<message>.*)$", re.DOTALL)


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        details = [str(e.get("message", "")) for e in body.get("errors", [])]
        super().__init__(": ".join([str(body.get("message", "")), *details]))
        self.status = status
        self.body = body


class _Snapshot:
    """The store at one moment, compiled: its modules, its data and an engine holding both."""

    def __init__(self, policies: dict[str, str], data: dict[str, Any]) -> None:
        self.policies = policies
        self.data = data
        self.engine = OpaEngine()
        try:
            for policy_id, text in sorted(policies.items()):
                self.engine.add_policy(policy_id, text)
            self.engine.add_data(data)
            self.engine.eval_query("true")  # compiles everything: OPA refuses a change that does not compile
        except OpaError as e:
            self.engine.close()
            raise _Refused(
                400,
                {
                    "code": "invalid_parameter",
                    "message": "error(s) occurred while compiling module(s)",
                    "errors": [_error(e)],
                },
            ) from None

    def query(self, path: list[str], input_doc: Any, strict: bool) -> Any:
        """The document at data.<path> (None when undefined)."""
        ref = "data" + "".join(f"[{json.dumps(p)}]" for p in path)
        try:
            found = self.engine.eval_query(f"x := {ref}", input_doc)
        except OpaError as e:
            error = _error(e)
            if error["code"] == "eval_builtin_error" and not strict:
                raise _Refused(
                    400,
                    {
                        "code": "invalid_parameter",
                        "message": "this stand-in evaluates builtins strictly only (OPA's Go engine in "
                        "opa-golib-python-bindings has no switch); ask with ?strict-builtin-errors=true",
                    },
                ) from None
            raise _Refused(
                500,
                {"code": "internal_error", "message": "error(s) occurred while evaluating query", "errors": [error]},
            ) from None
        return found[0]["x"] if found else None


def _error(e: OpaError) -> dict[str, Any]:
    """OPA's error entry from the bindings' one line (`file:row: code: message`)."""
    text = str(e).split("error occurred: ")[-1].split("errors occurred:\n")[-1].strip()
    m = _LOCATED.match(text)
    if m is None:
        return {"code": getattr(e, "code", "error"), "message": text}
    return {
        "code": m.group("code"),
        "message": m.group("message").strip(),
        "location": {"file": m.group("file"), "row": int(m.group("row")), "col": 1},
    }


class OpaStandIn:
    def __init__(self, policies: Path | None = None, token: str | None = None) -> None:
        modules: dict[str, str] = {}
        data: dict[str, Any] = {}
        if policies is not None:  # as `opa run -s --ignore '*_test.rego' policies/` loads a folder
            loaded = PolicyBundle.from_dir(policies)
            modules = {f"{policies}/{path}": text for path, text in loaded.policies().items()}
            data = copy.deepcopy(loaded.data)
        self._snapshot = _Snapshot(modules, data)
        self._write = threading.Lock()  # writes one at a time, as OPA's write transactions
        self.token = token
        self.requests: list[tuple[str, str, Any]] = []  # (method, path with its query string, body)
        self.authorization: list[str | None] = []  # each request's Authorization header
        self.delay_s = 0.0
        self.fail_with: int | None = None
        self.before_write: Callable[[str, str], None] | None = None
        self._asts: dict[tuple[str, str], Any] = {}  # (id, text) -> OPA's AST of it, for listings
        self._parser: OpaEngine | None = None
        self._parse = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._parser is not None:
            self._parser.close()

    # ------------------------------------------------------------------ the store, for tests

    @property
    def policies(self) -> dict[str, str]:
        return dict(self._snapshot.policies)

    @property
    def data(self) -> dict[str, Any]:
        return copy.deepcopy(self._snapshot.data)

    def put_policy(self, policy_id: str, text: str) -> None:
        if self._snapshot.policies.get(policy_id) == text:
            return  # as OPA: the same module again changes nothing (and compiles nothing)
        self._change(lambda policies, data: policies.__setitem__(policy_id, text))

    def delete_policy(self, policy_id: str) -> None:
        def drop(policies: dict[str, str], data: dict[str, Any]) -> None:
            if policy_id not in policies:
                raise _Refused(404, {"code": "resource_not_found", "message": f"storage_not_found_error: {policy_id}"})
            del policies[policy_id]

        self._change(drop)

    def put_data(self, path: list[str], value: Any) -> None:
        def put(policies: dict[str, str], data: dict[str, Any]) -> None:
            node = data
            for i, part in enumerate(path[:-1]):
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise _Refused(
                        404, {"code": "resource_not_found", "message": f"{'/'.join(path[: i + 1])} is not an object"}
                    )
            if path:
                node[path[-1]] = value
            elif isinstance(value, dict):
                data.clear()
                data.update(value)
            else:
                raise _Refused(400, {"code": "invalid_parameter", "message": "the root document must be an object"})

        self._change(put)

    def delete_data(self, path: list[str]) -> None:
        def drop(policies: dict[str, str], data: dict[str, Any]) -> None:
            node: Any = data
            for part in path[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if not path or not isinstance(node, dict) or path[-1] not in node:
                raise _Refused(
                    404, {"code": "resource_not_found", "message": f"storage_not_found_error: /{'/'.join(path)}"}
                )
            del node[path[-1]]

        self._change(drop)

    def query(self, path: list[str], input_doc: Any = None, strict: bool = True) -> Any:
        return self._snapshot.query(path, input_doc, strict)

    def listed(self, policies: dict[str, str]) -> list[dict[str, Any]]:
        """`policies` as `GET /v1/policies` lists them: id, raw text and OPA's AST of it."""
        with self._parse:
            missing = {i: t for i, t in policies.items() if (i, t) not in self._asts}
            if missing:  # all at once: one evaluation parses them all
                if self._parser is None:
                    self._parser = OpaEngine()
                parsed = self._parser.eval_query("x := {i: rego.parse_module(i, m) | some i, m in input}", missing)
                for i, t in missing.items():
                    self._asts[(i, t)] = parsed[0]["x"][i]
            return [{"id": i, "raw": t, "ast": self._asts[(i, t)]} for i, t in sorted(policies.items())]

    def _change(self, change: Any) -> None:
        """Apply `change` to a copy of the store; keep it only if everything still compiles."""
        with self._write:
            policies, data = dict(self._snapshot.policies), copy.deepcopy(self._snapshot.data)
            change(policies, data)
            self._snapshot = _Snapshot(policies, data)  # queries already running keep the old one

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None) -> None:
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _raw(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _serve(self, method: str) -> None:
                raw = self._raw()
                body: Any = raw.decode() if self.path.startswith("/v1/policies") else json.loads(raw or b"null")
                standin.requests.append((method, self.path, body))
                standin.authorization.append(self.headers.get("Authorization"))
                if standin.token is not None and self.headers.get("Authorization") != f"Bearer {standin.token}":
                    return self._send(401, {"code": "unauthorized", "message": "missing or invalid token"})
                url = urlsplit(self.path)
                if method in ("PUT", "DELETE") and standin.before_write is not None:
                    standin.before_write(method, url.path)
                params = parse_qs(url.query, keep_blank_values=True)
                try:
                    self._send(*self._answer(method, url.path, body, params))
                except _Refused as e:
                    self._send(e.status, e.body)

            def _answer(self, method: str, path: str, body: Any, params: dict[str, list[str]]) -> tuple[int, Any]:
                if path.startswith("/health"):
                    return 200, {}
                if path.rstrip("/") == "/v1/policies" and method == "GET":
                    return 200, {"result": standin.listed(standin.policies)}
                if path.startswith("/v1/policies/"):
                    policy_id = unquote(path.removeprefix("/v1/policies/"))
                    if method == "PUT":
                        standin.put_policy(policy_id, body)
                        return 200, {}
                    if method == "DELETE":
                        standin.delete_policy(policy_id)
                        return 200, {}
                    if method == "GET" and policy_id in standin.policies:
                        [listed] = standin.listed({policy_id: standin.policies[policy_id]})
                        return 200, {"result": listed}
                    return 404, {"code": "resource_not_found", "message": f"storage_not_found_error: {policy_id}"}
                if path.startswith("/v1/data"):
                    parts = [unquote(p) for p in path.removeprefix("/v1/data").split("/") if p]
                    if method == "PUT":
                        standin.put_data(parts, body)
                        return 204, None
                    if method == "DELETE":
                        standin.delete_data(parts)
                        return 204, None
                    if method in ("GET", "POST"):
                        if method == "POST":
                            if standin.delay_s:
                                time.sleep(standin.delay_s)  # simulating a slow server, not synchronising anything
                            if standin.fail_with:
                                return standin.fail_with, {"code": "internal_error", "message": "boom"}
                        strict = [v.lower() for v in params.get("strict-builtin-errors", [])] in (["true"], [""])
                        value = standin.query(parts, (body or {}).get("input") if method == "POST" else None, strict)
                        return 200, {} if value is None else {"result": value}
                return 404, {"code": "resource_not_found", "message": path}

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler
