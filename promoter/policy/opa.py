"""The `opa` backend: a real OPA server, judging with exactly the policies the audit names.

Before it evaluates, the worker pushes the revision it was given (the `PolicyBundle` the embedded
engine would evaluate: every module of `policies/` but the tests, `data.yaml`, the exceptions at
`data.exceptions` and the METADATA at `data.policy_metadata`) through OPA's Policy API
(`PUT /v1/policies/{id}`) and Data API (`PUT /v1/data/{path}`), then asks the Data API with
`?strict-builtin-errors=true`. Whatever copy of the policies the server loaded itself is never asked.
(docs/policies.md, "OPA sees what the audit names", says why this layout and what else was considered.)

**Each revision in its own namespace.** Rego packages are global in OPA, so two revisions of
`package promotion.approvals` cannot be loaded as they are. Every module of revision K is pushed with
its package and its `data` references moved under `data.promoter_rev.<K>` (`package kubernetes.images`
becomes `package promoter_rev.<K>.kubernetes.images`, `data.allowed_registries` becomes
`data.promoter_rev.<K>.allowed_registries`), and its data document goes to `data.promoter_rev.<K>`
whole. Inside the namespace the layout is the one the policies were written for, so they decide as
they would at the root; two revisions coexist, and promotions judged by either never see the other's
rules. The rewrite is lexical: the token `data` (not a field such as `x.data`, nor inside a string or
comment) and the `package` line.

**No one else's module in it.** OPA merges every module that declares the same package, so a module
that names `package promoter_rev.<K>.promoter` takes part in K's decision (a second `live_exception`
definition excepts every finding). K is therefore a MAC of what is pushed under a random secret of
this worker (`OpaEngine`), never sent: no module written before the push (on the server's disk, or PUT
by a client) can name the namespace, and each worker pushes its own copy. After every query the worker
lists the server's modules (`GET /v1/policies`) and trusts the answer only if, under its key, there
are exactly the modules it pushed, word for word, and no module declares a package in promoter's
roots unless it is laid out as a worker's own; otherwise `decide` denies naming the module. A module
put and removed again between the query and the listing is not seen: no API of OPA lists and
evaluates in one transaction. What keeps a client from writing at all is OPA's authentication
(docker-compose.yml); docs/policies.md says what each check holds against.

**Loaded whole, or not at all.** Pushing takes many requests, and OPA applies each on its own, so a
query could otherwise run while a revision is half pushed or half deleted. Three things close that:
each module of K gets one extra function (`promoter_pin_<h>(_) := true`, invisible in the package's
document, so no rule sees it); a last module, the answer (`data.promoter_answer.<K>`), calls every one
of those functions, so OPA compiles it only while all of K's modules are loaded, and refuses to delete
any of them while it stands; and the revision's name travels inside K's data document
(`promoter_revision`), read in the same query. A query that finds no answer, or an answer without its
data, pushes K (again) and asks again; an answer naming another revision than the one pushed is an
error, so `decide` denies naming both (fail closed). In steady state an evaluation is one query and
one listing.

Old revisions are removed when a new one is pushed: this worker's beyond the `keep` most recently
used, and any other worker's unused for `stale_s` (a worker marks a revision used every few minutes),
answer first (which unpins the modules), then the data, the modules, and last its entry in
`data.promoter_revisions` (the list of pushed revisions, read to choose). An evaluation that loses its
revision to that in the middle finds the answer gone and pushes it again.

Unreachable, slow, refusing a push, or failing a query (a builtin error included), OPA raises, and
`decide` denies naming the cause. The bearer token (`PROMOTER_OPA_TOKEN`) goes on every request and
into no message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from opa_client import OpaClient

from promoter import errors, policy
from promoter.errors import BadInput
from promoter.policy import DECISION, PolicyBundle, register

# Part of every revision's key: a worker that lays revisions out differently never shares one.
SCHEME = "promoter-opa-push/2"
NAMESPACE = "promoter_rev"  # data.promoter_rev.<key>: a revision's modules and data
ANSWERS = "promoter_answer"  # data.promoter_answer.<key>: its answer (revision and decision)
REGISTRY = "promoter_revisions"  # data.promoter_revisions.<key>: {revision, used_at}, for removal
# promoter's roots in OPA: a module that declares a package in one is a worker's (`promoter/<key>/...`,
# its package under that key) or foreign, and a foreign one there makes every decision a denial
RESERVED = (NAMESPACE, ANSWERS, REGISTRY)
REVISION_KEY = "promoter_revision"  # in a revision's data: the revision's name
ATTEMPTS = 3  # pushes per evaluation before it gives up (another worker kept removing the revision)
USED_EVERY_S = 600.0  # how often (at most) a worker marks a revision it evaluates with as used
STALE_S = 3600.0  # another worker's revision unused this long is removed (its worker pushes it again)

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
    def of(cls, bundle: PolicyBundle, secret: bytes) -> Layout:
        """`secret`: the worker's own (random, never sent). The key is a MAC of the content under it, so
        that nobody can compute it from the commit and its files and write a module into the namespace
        before it exists; 128 bits, so it cannot be guessed either."""
        data = bundle.full_data()
        if REVISION_KEY in data:
            raise BadInput(f"policies/data.yaml: {REVISION_KEY} is reserved for the opa backend; rename it")
        revision = named(bundle)
        policies = bundle.policies()
        mac = hmac.new(secret, f"{SCHEME}\0{revision}\0".encode(), hashlib.sha256)
        for path in sorted(policies):
            mac.update(path.encode() + b"\0" + policies[path].encode() + b"\0")
        mac.update(json.dumps(data, sort_keys=True, default=str).encode())
        key = "r" + mac.hexdigest()[:32]
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
                "# when this worker last marked the revision used: others remove it once it is stale",
                f"used_at := data.{REGISTRY}.{key}.used_at",
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


def package_path(source: str) -> list[str] | None:
    """The package a module declares, as OPA reads its first statement: `package a.b["c"]` is
    [a, b, c] (string keys decoded, `"\\u0061"` is `a`). None when the module starts with anything
    else, or with a package path this cannot read: the caller then treats the module as suspect."""
    tokens = [m.group(0) for m in _TOKEN.finditer(source)]
    i = 0

    def skip_blank() -> None:
        nonlocal i
        while i < len(tokens) and (tokens[i].isspace() or tokens[i].startswith("#")):
            i += 1

    def name(token: str) -> bool:
        return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token))

    skip_blank()
    if i >= len(tokens) or tokens[i] != "package":
        return None
    i += 1
    skip_blank()
    if i >= len(tokens) or not name(tokens[i]):
        return None
    path = [tokens[i]]
    i += 1
    while i < len(tokens):  # a ref has no blank space between its parts (but may inside brackets)
        if tokens[i] == "." and i + 1 < len(tokens) and name(tokens[i + 1]):
            path.append(tokens[i + 1])
            i += 2
        elif tokens[i] == "[":
            i += 1
            skip_blank()
            if i >= len(tokens):
                return None
            key = _string(tokens[i])
            i += 1
            skip_blank()
            if key is None or i >= len(tokens) or tokens[i] != "]":
                return None
            path.append(key)
            i += 1
        else:
            break
    return path


def _string(token: str) -> str | None:
    """A Rego string token's value (None: not a string)."""
    if token.startswith("`") and token.endswith("`") and len(token) >= 2:
        return token[1:-1]
    if token.startswith('"'):
        try:
            value = json.loads(token)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    return None


def listed_package(module: dict[str, Any]) -> list[str] | None:
    """The package of a module in OPA's listing: from the `ast` OPA returns with it (its path is the
    var `data`, then strings), else read from its `raw` text; None when neither says."""
    ast = module.get("ast")
    if isinstance(ast, dict):
        package = ast.get("package")
        path = package.get("path") if isinstance(package, dict) else None
        if isinstance(path, list) and len(path) >= 2 and all(isinstance(t, dict) for t in path):
            values = [t.get("value") for t in path[1:]]
            if all(isinstance(v, str) for v in values):
                return [str(v) for v in values]
    raw = module.get("raw")
    return package_path(raw) if isinstance(raw, str) else None


def foreign(module: dict[str, Any], key: str) -> str | None:
    """Why `module`, which the worker owning `key` did not push, endangers that worker's decisions
    (None: it does not). OPA merges all the modules of a package, and a rule's path starts with its
    module's package (rule heads may go deeper: `package promoter_rev` can define
    `<key>.promoter.x`), so a module is in the namespace when its package and the worker's root share
    a prefix either way. Anywhere else in promoter's roots, a module must be laid out as another
    worker's: its id `promoter/<k>/...`, its package under that same k."""
    package = listed_package(module)
    if package is None:
        return "its package cannot be read, so it may be anywhere"
    if package[0] not in RESERVED:
        return None
    dotted = ".".join(package).replace(key, "<key>")
    for root in ([NAMESPACE, key], [ANSWERS, key]):
        n = min(len(root), len(package))
        if package[:n] == root[:n]:
            return f"package {dotted}, in this worker's namespace"
    owner = _POLICY_ID.match(str(module.get("id", "")))
    if owner and len(package) >= 2 and package[0] in (NAMESPACE, ANSWERS) and package[1] == owner.group(1):
        return None  # another worker's revision: its own namespace, never asked here
    return f"package {dotted}, in {package[0]}, where only promoter workers push (under their own key)"


class _NotLoaded(Exception):
    """The server does not hold the revision whole (never pushed, removed, or half pushed)."""


class OpaEngine:
    name = "opa"

    def __init__(
        self, url: str, timeout_s: float = 5.0, token: str | None = None, keep: int = 4, stale_s: float = STALE_S
    ) -> None:
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
        _guarded(self.client._session)
        self.keep = max(keep, 1)
        self.stale_s = stale_s
        # This worker's secret, in every key it pushes under (one worker, one secret: a worker process
        # makes one engine). Never sent nor logged; a restart makes a new one, and pushes again.
        self._secret = secrets.token_bytes(32)
        self._pushed: set[str] = set()  # the keys this worker pushed: its own, to remove beyond `keep`
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
        except errors.PASS_THROUGH:
            raise
        except Exception as e:  # noqa: BLE001 - say where, never the token
            raise RuntimeError(f"OPA at {self.url}: {_describe(e)}") from None

    def warm(self, bundle: PolicyBundle) -> None:
        """Push `bundle` now unless the server holds it, so that the first promotion does not wait;
        and say now if a foreign module sits in its namespace."""
        layout = self.layout(bundle)
        try:
            if self._loaded(layout) != layout.revision:
                self._push(layout)
            self._verify(layout)
        except _NotLoaded:
            pass  # removed again already: the first evaluation pushes it
        except (RuntimeError, BadInput):
            raise
        except errors.PASS_THROUGH:
            raise
        except Exception as e:  # noqa: BLE001 - any transport or API failure becomes one line naming the server
            raise RuntimeError(f"OPA at {self.url}: {_describe(e)}") from None

    def layout(self, bundle: PolicyBundle) -> Layout:
        key = (named(bundle), bundle.revision)
        with self._layouts_lock:
            found = self._layouts.get(key)
        if found is None:
            found = Layout.of(bundle, self._secret)
            with self._layouts_lock:
                self._layouts[key] = found
                while len(self._layouts) > 4:
                    self._layouts.popitem(last=False)
        return found

    # ------------------------------------------------------------------ asking

    def _ask(self, layout: Layout, input_doc: dict[str, Any]) -> dict[str, Any]:
        """One Data API query (the revision OPA holds under the key, and its decision, read together),
        then the listing that says no one else's module took part in it."""
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
        # After the query, not before: a module that took part in it and is still there is seen; one
        # added after a listing made before the query would not be.
        self._verify(layout)
        used_at = result.get("used_at")
        if not isinstance(used_at, int | float) or time.time() - used_at > USED_EVERY_S:
            self._mark_used(layout)
        decision: dict[str, Any] = result["decision"]
        return decision

    def _verify(self, layout: Layout) -> None:
        """Raise unless the server holds, under the layout's key, exactly the modules this worker
        pushed, word for word, and no foreign module in promoter's roots (see `foreign`): a denial
        naming the module. `_NotLoaded` when one of this worker's modules is gone (removed since)."""
        seen: set[str] = set()
        for module in self._listing():
            policy_id = str(module.get("id"))
            if policy_id in layout.modules:
                if module.get("raw") != layout.modules[policy_id]:
                    raise RuntimeError(
                        f"OPA at {self.url} holds module {policy_id} ({layout.paths[policy_id]}) changed from "
                        "what this worker pushed; nothing is allowed while it differs"
                    )
                seen.add(policy_id)
                continue
            why = foreign(module, layout.key)
            if why is not None:
                raise RuntimeError(
                    f"OPA at {self.url} holds module {policy_id!r}, which this worker did not push: {why}. "
                    f"It could take part in the decisions of revision {layout.revision}; nothing is allowed "
                    "while it is there (remove it, and see who can write to OPA)"
                )
        if seen != set(layout.modules):
            raise _NotLoaded()

    def _listing(self) -> list[dict[str, Any]]:
        """`GET /v1/policies`: every module the server holds, with its text (and OPA's AST of it). The
        client's own calls return only the ids, or no text; its session carries the token."""
        response = self.client._session.get(f"{self.client.root_url}/policies", timeout=self.client.timeout)
        response.raise_for_status()
        listed = response.json().get("result")
        if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
            raise RuntimeError(
                f"OPA at {self.url} listed its policies in a shape this does not know; nothing is allowed"
            )
        return listed

    def _loaded(self, layout: Layout) -> str | None:
        """The revision the server holds under the layout's key, whole (None: not loaded)."""
        try:
            found = self.client.get_data(f"{ANSWERS}/{layout.key}/revision")
        except errors.PASS_THROUGH:
            raise
        except Exception:  # noqa: BLE001 - anything but an answer: push, which says what is wrong
            return None
        value = found.get("result")
        return value if isinstance(value, str) else None

    def _mark_used(self, layout: Layout) -> None:
        """Its registry entry says the revision is in use (other workers remove only stale ones)."""
        try:
            self.client.update_or_create_data(
                {"revision": layout.revision, "used_at": time.time()}, f"{REGISTRY}/{layout.key}"
            )
        except errors.PASS_THROUGH:
            raise
        except Exception:  # noqa: BLE001 - housekeeping: at worst the revision is removed and pushed again
            pass

    # ------------------------------------------------------------------ pushing

    def _push(self, layout: Layout) -> None:
        """Put the layout's data, then its modules, the answer last; register it; remove the old."""
        with self._push_lock:
            if self._loaded(layout) == layout.revision:  # another thread of this worker just did
                return
            self._pushed.add(layout.key)
            self.client.update_or_create_data(layout.data, f"{NAMESPACE}/{layout.key}")
            self._each(
                layout.modules,
                lambda i: self.client.update_policy_from_string(layout.modules[i], _id(i), rego_compat=False),
                layout,
            )
            self.client.update_or_create_data(
                {"revision": layout.revision, "used_at": time.time()}, f"{REGISTRY}/{layout.key}"
            )
            try:
                self._remove_old(layout)
            except errors.PASS_THROUGH:
                raise
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
                except errors.PASS_THROUGH:
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
        """This worker's revisions but the `keep` most recently used (and this one), and every other
        worker's unused for `stale_s` (that worker is gone, or pushes it again when it needs it)."""
        registry = self.client.get_data(REGISTRY).get("result") or {}
        if not isinstance(registry, dict):
            return
        now = time.time()
        mine = sorted((k for k in registry if k in self._pushed), key=lambda k: -_used_at(registry[k]))
        old = [k for k in mine[self.keep :] if k != layout.key]
        old += [k for k in registry if k not in self._pushed and now - _used_at(registry[k]) >= self.stale_s]
        if not old:
            return
        ids = [str(m.get("id")) for m in self._listing()]
        for key in old:
            ours = [i for i in ids if (m := _POLICY_ID.match(i)) and m.group(1) == key]
            answer = f"promoter/{key}/answer"
            if answer in ours:  # first: it pins the others
                self.client.delete_policy(_id(answer))
            try:
                self.client.delete_data(f"{NAMESPACE}/{key}")
            except errors.PASS_THROUGH:
                raise
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._each([i for i in ours if i != answer], lambda i: self.client.delete_policy(_id(i)), None)
            self.client.delete_data(f"{REGISTRY}/{key}")
            self._pushed.discard(key)


def _used_at(entry: Any) -> float:
    """When a registry entry's revision was last used (pushed_at: a worker of the first layout); 0 if
    it does not say."""
    if not isinstance(entry, dict):
        return 0.0
    value = entry.get("used_at", entry.get("pushed_at"))
    return float(value) if isinstance(value, int | float) else 0.0


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


def _guarded(session: requests.Session) -> None:
    """Every request `session` sends (the client's calls and `_listing`), with its answer read (the
    client never streams), under `promoter.policy.REQUEST_GUARD`: a cancel lands between two requests,
    never inside one."""
    send = session.request

    def request(*args: Any, **kwargs: Any) -> requests.Response:
        with policy.REQUEST_GUARD():
            return send(*args, **kwargs)

    session.request = request  # type: ignore[method-assign]


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
