"""The `opa` backend: a real OPA server, judging with exactly the policies the audit names.

Before it evaluates, the worker pushes the revision it was given (the `PolicyBundle` the embedded
engine would evaluate: every module of `policies/` but the tests, `data.yaml`, the exceptions at
`data.exceptions` and the METADATA at `data.policy_metadata`) through OPA's Policy API
(`PUT /v1/policies/{id}`) and Data API (`PUT /v1/data/{path}`), then asks the Data API with
`?strict-builtin-errors=true`. Whatever copy of the policies the server loaded itself is never asked.
(docs/policies.md, "OPA sees what the audit names", says why this layout and what else was considered.)

**Each revision in its own namespace.** Rego packages are global in OPA, so two revisions of
`package promotion.approvals` cannot be loaded as they are. Every module of revision K (a digest of
what is pushed) is pushed with its package and its `data` references moved under
`data.promoter_rev.<K>` (`package kubernetes.images` becomes `package promoter_rev.<K>.kubernetes.images`,
`data.allowed_registries` becomes `data.promoter_rev.<K>.allowed_registries`), and its data document
goes to `data.promoter_rev.<K>` whole. Inside the namespace the layout is the one the policies were
written for, so they decide as they would at the root; two revisions coexist, and promotions judged by
either (on any number of workers) never see the other's rules. The rewrite is lexical: the token
`data` (not a field such as `x.data`, nor inside a string or comment) and the `package` line.

**Loaded whole, or not at all.** Pushing takes many requests, and OPA applies each on its own, so a
query could otherwise run while a revision is half pushed or half deleted. Three things close that:
each module of K gets one extra function (`promoter_pin_<h>(_) := true`, invisible in the package's
document, so no rule sees it); a last module, the answer (`data.promoter_answer.<K>`), calls every one
of those functions, so OPA compiles it only while all of K's modules are loaded, and refuses to delete
any of them while it stands; and the revision's name travels inside K's data document
(`promoter_revision`), read in the same query. A query that finds no answer, or an answer without its
data, pushes K (again) and asks again; an answer naming another revision than the one pushed is an
error, so `decide` denies naming both (fail closed). In steady state an evaluation is one query.

Old revisions are removed when a new one is pushed: all but the `keep` most recently pushed, answer
first (which unpins the modules), then the data, the modules, and last its entry in
`data.promoter_revisions` (the list of pushed revisions, read to choose). An evaluation that loses its
revision to that in the middle finds the answer gone and pushes it again.

Unreachable, slow, refusing a push, or failing a query (a builtin error included), OPA raises, and
`decide` denies naming the cause. The bearer token (`PROMOTER_OPA_TOKEN`) goes on every request and
into no message.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from opa_client import OpaClient

from promoter.errors import BadInput
from promoter.policy import DECISION, PolicyBundle, register

# Part of every revision's key: a worker that lays revisions out differently never shares one.
SCHEME = "promoter-opa-push/1"
NAMESPACE = "promoter_rev"  # data.promoter_rev.<key>: a revision's modules and data
ANSWERS = "promoter_answer"  # data.promoter_answer.<key>: its answer (revision and decision)
REGISTRY = "promoter_revisions"  # data.promoter_revisions.<key>: {revision, pushed_at}, for removal
REVISION_KEY = "promoter_revision"  # in a revision's data: the revision's name
ATTEMPTS = 3  # pushes per evaluation before it gives up (another worker kept removing the revision)

# Rego's lexical elements, enough to tell code from strings and comments: a comment, a string, a raw
# string, an identifier, blank space, or any other single character.
_TOKEN = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`|[A-Za-z_][A-Za-z0-9_]*|\s+|.', re.DOTALL)
_POLICY_ID = re.compile(r"^promoter/(r[0-9a-f]+)/")


def namespaced(source: str, prefix: str) -> str:
    """`source` with its package and every reference to `data` moved under `prefix` (a dotted path
    of identifiers): `package a.b` becomes `package <prefix>.a.b`, `data.x` becomes
    `data.<prefix>.x`, `data[k]` `data.<prefix>[k]`. Strings, comments and fields named `data`
    (`input.data`) are left as they are."""
    out: list[str] = []
    previous = ""  # the last token that is not blank space or a comment
    after_package = False
    for m in _TOKEN.finditer(source):
        token = m.group(0)
        if token.isspace() or token.startswith("#"):
            out.append(token)
            continue
        if after_package:
            out.append(f"{prefix}.")
            after_package = False
        if token == "package" and previous != ".":
            after_package = True
        elif token == "data" and previous != ".":
            token = f"data.{prefix}"
        out.append(token)
        previous = token
    return "".join(out)


@dataclass(frozen=True)
class Layout:
    """A bundle as it is pushed: its key, its modules by policy id, its data document."""

    revision: str
    key: str
    modules: dict[str, str]  # policy id -> Rego, the answer last
    paths: dict[str, str]  # policy id -> its file in policies/, for messages
    data: dict[str, Any]

    @classmethod
    def of(cls, bundle: PolicyBundle) -> Layout:
        data = bundle.full_data()
        if REVISION_KEY in data:
            raise BadInput(f"policies/data.yaml: {REVISION_KEY} is reserved for the opa backend; rename it")
        revision = named(bundle)
        policies = bundle.policies()
        digest = hashlib.sha256(f"{SCHEME}\0{revision}\0".encode())
        for path in sorted(policies):
            digest.update(path.encode() + b"\0" + policies[path].encode() + b"\0")
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
        key = "r" + digest.hexdigest()[:20]
        prefix = f"{NAMESPACE}.{key}"
        modules: dict[str, str] = {}
        paths: dict[str, str] = {}
        pins: list[str] = []
        for path in sorted(policies):
            policy_id = f"promoter/{key}/{path}"
            text = namespaced(policies[path], prefix)
            pin = "promoter_pin_" + hashlib.sha256(path.encode()).hexdigest()[:12]
            package = _package(text, f"policies/{path}")
            if package is not None:  # without a package statement, OPA refuses the module, naming it
                text += f"\n\n# pushed by promoter: the answer calls it, so OPA keeps this module\n{pin}(_) := true\n"
                pins.append(f"\tdata.{package}.{pin}(0)")
            modules[policy_id] = text
            paths[policy_id] = f"policies/{path}"
        answer = "\n".join(
            [
                f"package {ANSWERS}.{key}",
                "",
                "import rego.v1",
                "",
                "# Compiles only while every module of this revision is loaded (each call names a function only",
                "# that module defines): OPA refuses to delete any of them while this module stands.",
                f"pinned := {json.dumps(revision)} if {{",
                *(pins or ["\ttrue"]),
                "}",
                "",
                f"revision := data.{prefix}.{REVISION_KEY}",
                "",
                f"decision := data.{prefix}.{DECISION.removeprefix('data.')} if revision == {json.dumps(revision)}",
                "",
            ]
        )
        modules = {i: modules[i] for i in _dependencies_first(modules)}
        modules[f"promoter/{key}/answer"] = answer
        paths[f"promoter/{key}/answer"] = f"the answer module of revision {revision}"
        return cls(
            revision=revision,
            key=key,
            modules=modules,
            paths=paths,
            data={**data, REVISION_KEY: revision},
        )


def named(bundle: PolicyBundle) -> str:
    """The revision `decide` records for `bundle`, so the one OPA must answer with: the trusted rules
    revision's commit, or (off Git, e.g. `policy check`) the hash of its files."""
    return bundle.commit or bundle.revision


def _dependencies_first(modules: dict[str, str]) -> list[str]:
    """The ids in an order OPA accepts them one by one: a module after those whose package it
    refers into (OPA refuses a call to a function it does not have yet). A cycle is broken anywhere:
    the push then takes a second round."""
    packages = {i: _package(t, i) for i, t in modules.items()}
    refs = {i: set(re.findall(r"\bdata\.([A-Za-z_][A-Za-z0-9_.]*)", t)) for i, t in modules.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(i: str) -> None:
        if i in seen:
            return
        seen.add(i)
        for j, package in sorted(packages.items()):
            if j != i and package and any(r == package or r.startswith(package + ".") for r in refs[i]):
                visit(j)
        order.append(i)

    for i in sorted(modules):
        visit(i)
    return order


def _package(source: str, where: str) -> str | None:
    """The dotted package of a (namespaced) module; None when it has no package statement."""
    for m in _TOKEN.finditer(source):
        token = m.group(0)
        if token.isspace() or token.startswith("#"):
            continue
        if token != "package":
            return None
        found = re.match(
            r"[ \t]*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*(?:#[^\n]*)?(?:\n|$)", source[m.end() :]
        )
        if found is None:
            raise BadInput(f"{where}: the opa backend needs a package path of plain names (package a.b.c)")
        return found.group(1)
    return None


class _NotLoaded(Exception):
    """The server does not hold the revision whole (never pushed, removed, or half pushed)."""


class OpaEngine:
    name = "opa"

    def __init__(self, url: str, timeout_s: float = 5.0, token: str | None = None, keep: int = 4) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"PROMOTER_OPA_URL must look like http://host:8181, not {url!r}")
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or 8181}"
        self.client = OpaClient(
            host=parts.hostname,
            port=parts.port or 8181,
            ssl=parts.scheme == "https",
            timeout=timeout_s,
            retries=0,
            token=token,
        )
        self.keep = max(keep, 1)
        self._layouts: OrderedDict[tuple[str, str], Layout] = OrderedDict()  # (name, files' hash): the newest few
        self._layouts_lock = threading.Lock()
        self._push_lock = threading.Lock()  # one push at a time from this worker; queries never wait for it

    # ------------------------------------------------------------------ the engine

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        layout = self.layout(bundle)
        try:
            for _ in range(ATTEMPTS):
                try:
                    return self._ask(layout, input_doc)
                except _NotLoaded:
                    self._push(layout)
            return self._ask(layout, input_doc)
        except _NotLoaded:
            raise RuntimeError(
                f"OPA at {self.url} lost revision {layout.revision} {ATTEMPTS} times while it was being "
                "evaluated (another worker removing it?); nothing is allowed until it stays loaded"
            ) from None
        except (RuntimeError, BadInput):
            raise
        except Exception as e:  # noqa: BLE001 - say where, never the token
            raise RuntimeError(f"OPA at {self.url}: {_describe(e)}") from None

    def warm(self, bundle: PolicyBundle) -> None:
        """Push `bundle` now unless the server holds it, so that the first promotion does not wait."""
        layout = self.layout(bundle)
        try:
            if self._loaded(layout) != layout.revision:
                self._push(layout)
        except (RuntimeError, BadInput):
            raise
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"OPA at {self.url}: {_describe(e)}") from None

    def layout(self, bundle: PolicyBundle) -> Layout:
        key = (named(bundle), bundle.revision)
        with self._layouts_lock:
            found = self._layouts.get(key)
        if found is None:
            found = Layout.of(bundle)
            with self._layouts_lock:
                self._layouts[key] = found
                while len(self._layouts) > 4:
                    self._layouts.popitem(last=False)
        return found

    # ------------------------------------------------------------------ asking

    def _ask(self, layout: Layout, input_doc: dict[str, Any]) -> dict[str, Any]:
        """One Data API query: the revision OPA holds under the key, and its decision, read together."""
        try:
            answer = self.client.query_rule(
                input_doc, f"{ANSWERS}/{layout.key}", query_params={"strict-builtin-errors": "true"}
            )
        except requests.HTTPError as e:
            raise RuntimeError(f"OPA at {self.url}: {_http_error(e, layout)}") from None
        result = answer.get("result")
        if not isinstance(result, dict) or "revision" not in result or "pinned" not in result:
            raise _NotLoaded()
        if result["revision"] != layout.revision or result["pinned"] != layout.revision:
            raise RuntimeError(
                f"OPA at {self.url} answered with revision {result['revision']} (answer module "
                f"{result['pinned']}), not the pushed {layout.revision}; nothing is allowed"
            )
        if "decision" not in result:
            raise RuntimeError(
                f"OPA at {self.url} has no {DECISION} in revision {layout.revision} "
                "(is policies/promoter/decision.rego there?)"
            )
        decision: dict[str, Any] = result["decision"]
        return decision

    def _loaded(self, layout: Layout) -> str | None:
        """The revision the server holds under the layout's key, whole (None: not loaded)."""
        try:
            found = self.client.get_data(f"{ANSWERS}/{layout.key}/revision")
        except Exception:  # noqa: BLE001 - anything but an answer: push, which says what is wrong
            return None
        value = found.get("result")
        return value if isinstance(value, str) else None

    # ------------------------------------------------------------------ pushing

    def _push(self, layout: Layout) -> None:
        """Put the layout's data, then its modules, the answer last; register it; remove the old."""
        with self._push_lock:
            if self._loaded(layout) == layout.revision:  # another thread (or worker) just did
                return
            self.client.update_or_create_data(layout.data, f"{NAMESPACE}/{layout.key}")
            self._each(
                layout.modules,
                lambda i: self.client.update_policy_from_string(layout.modules[i], _id(i), rego_compat=False),
                layout,
            )
            self.client.update_or_create_data(
                {"revision": layout.revision, "pushed_at": time.time()}, f"{REGISTRY}/{layout.key}"
            )
            try:
                self._remove_old(layout)
            except Exception:  # noqa: BLE001 - removing is housekeeping: the next push tries again
                pass

    def _each(self, ids: Any, op: Any, layout: Layout | None) -> None:
        """`op` on every id, in rounds: OPA compiles all its modules on every change, so a module
        that calls a function of one not yet pushed (or deleted) is refused until that one is. Stops
        when a round makes no progress, raising the first refusal (naming the file)."""
        pending = list(ids)
        while pending:
            refused: list[tuple[str, Exception]] = []
            for policy_id in pending:
                try:
                    op(policy_id)
                except (requests.ConnectionError, requests.Timeout):
                    raise
                except Exception as e:  # noqa: BLE001 - a refusal: perhaps only for now
                    refused.append((policy_id, e))
            if len(refused) == len(pending):
                # the modules' own errors first: the answer is refused whenever any of them is
                first, error = sorted(refused, key=lambda r: r[0].endswith("/answer"))[0]
                where = layout.paths.get(first, first) if layout else first
                raise RuntimeError(f"OPA at {self.url} refused {where}: {_describe(error, layout)}")
            pending = [p for p, _ in refused]

    def _remove_old(self, layout: Layout) -> None:
        """Every registered revision but the `keep` most recently pushed (and this one)."""
        registry = self.client.get_data(REGISTRY).get("result") or {}
        if not isinstance(registry, dict):
            return
        ranked = sorted(registry, key=lambda k: -float((registry[k] or {}).get("pushed_at", 0)))
        old = [k for k in ranked[self.keep :] if k != layout.key]
        if not old:
            return
        ids = self.client.get_policies_list()
        for key in old:
            mine = [i for i in ids if (m := _POLICY_ID.match(i)) and m.group(1) == key]
            answer = f"promoter/{key}/answer"
            if answer in mine:  # first: it pins the others
                self.client.delete_policy(_id(answer))
            try:
                self.client.delete_data(f"{NAMESPACE}/{key}")
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._each([i for i in mine if i != answer], lambda i: self.client.delete_policy(_id(i)), None)
            self.client.delete_data(f"{REGISTRY}/{key}")


def _id(policy_id: str) -> str:
    """A policy id as a URL path (its slashes kept)."""
    return quote(policy_id, safe="/")


def _describe(e: BaseException, layout: Layout | None = None) -> str:
    """One line for an error of the client or of OPA, its file names made policies/ paths again."""
    text = str(getattr(e, "message", "") or e)
    errors = getattr(e, "errors", None)
    if isinstance(errors, list) and errors:
        text = "; ".join(_opa_error(err, layout) for err in errors if isinstance(err, dict)) or text
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {_unnamespaced(first, layout)[:300]}"


def _http_error(e: requests.HTTPError, layout: Layout) -> str:
    """OPA's own words on a failed query (`{"code", "message", "errors": [...]}`), e.g. the builtin
    error that strict-builtin-errors makes an error."""
    response = e.response
    status = response.status_code if response is not None else "?"
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    details = [_opa_error(err, layout) for err in body.get("errors") or [] if isinstance(err, dict)]
    said = "; ".join(details) or str(body.get("message") or "")
    return f"HTTP {status} {body.get('code', '')}: {_unnamespaced(said, layout)[:400]}".replace("  ", " ")


def _opa_error(err: dict[str, Any], layout: Layout | None) -> str:
    location = err.get("location") or {}
    where = ""
    if isinstance(location, dict) and location.get("file"):
        file = str(location["file"])
        where = f"{layout.paths.get(file, file) if layout else file}:{location.get('row', '?')}: "
    return _unnamespaced(f"{where}{err.get('code', 'error')}: {err.get('message', '')}", layout)


def _unnamespaced(text: str, layout: Layout | None) -> str:
    """A message as the policies' authors wrote them: policy ids as policies/ paths, the namespace gone."""
    if layout is None:
        return text
    for policy_id, path in layout.paths.items():
        if path.startswith("policies/"):
            text = text.replace(policy_id, path)
    return text.replace(f"data.{NAMESPACE}.{layout.key}.", "data.").replace(f"{NAMESPACE}.{layout.key}.", "")


@register("opa")
def _factory(url: str, timeout_s: float = 5.0, token: str | None = None) -> OpaEngine:
    return OpaEngine(url, timeout_s, token)
