"""A stand-in OPA server on loopback that speaks OPA's REST Data API, for the `opa` backend's tests.

No OPA server binary installs from PyPI here, so this server wraps OPA's own Go engine (the `opa-go`
backend, `opa-golib-python-bindings`) over the same policies/ an OPA would serve with
`opa run -s --ignore '*_test.rego' policies/`: the `opa` backend is tested against OPA's semantics,
never against the embedded engine it is compared with. It implements:
`POST /v1/data/{path}` with `{"input": ...}` → `{"result": ...}` (no "result" key when undefined),
`PUT /v1/data/{path}` (stores a document, 204), `GET /health`. Where it differs from OPA: no policy
upload API, no bundles, no decision logs, no query parameters (explain, metrics); data documents only
at top-level paths. `delay_s` and `fail_with` simulate a slow or failing server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from promoter.policy import PolicyBundle
from promoter.policy.goopa import GoOpaEngine


class OpaStandIn:
    def __init__(self, policies: Path) -> None:
        loaded = PolicyBundle.from_dir(policies)
        self.modules = loaded.policies()
        self.data: dict[str, Any] = dict(loaded.data)
        self.engine = GoOpaEngine()
        self.requests: list[tuple[str, str, Any]] = []
        self.delay_s = 0.0
        self.fail_with: int | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bundle(self) -> PolicyBundle:
        data = {k: v for k, v in self.data.items() if k != "policy_metadata"}
        return PolicyBundle(modules=self.modules, data=data, metadata=self.data.get("policy_metadata", {}))

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

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length", "0"))
                return json.loads(self.rfile.read(length) or b"null")

            def do_GET(self) -> None:
                standin.requests.append(("GET", self.path, None))
                if self.path.startswith("/health"):
                    self._send(200, {})
                else:
                    self._send(404, {"code": "resource_not_found", "message": self.path})

            def do_PUT(self) -> None:
                body = self._body()
                standin.requests.append(("PUT", self.path, body))
                if not self.path.startswith("/v1/data/"):
                    return self._send(404, {"code": "resource_not_found"})
                standin.data[self.path.removeprefix("/v1/data/").strip("/")] = body
                self._send(204)

            def do_POST(self) -> None:
                body = self._body()
                standin.requests.append(("POST", self.path, body))
                if standin.delay_s:
                    time.sleep(standin.delay_s)  # simulating a slow server, not synchronising anything
                if standin.fail_with:
                    return self._send(standin.fail_with, {"code": "internal_error", "message": "boom"})
                if not self.path.startswith("/v1/data/"):
                    return self._send(404, {"code": "resource_not_found"})
                rule = "data." + self.path.removeprefix("/v1/data/").strip("/").replace("/", ".")
                try:
                    value = standin.engine.query(standin.bundle(), rule, (body or {}).get("input"))
                except Exception as e:  # noqa: BLE001
                    return self._send(500, {"code": "internal_error", "message": str(e)[:200]})
                self._send(200, {} if value is None else {"result": value})

        return Handler
