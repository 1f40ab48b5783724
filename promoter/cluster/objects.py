"""What promoter writes on the objects it applies and how it names them: its labels and annotations, the
hash of what was applied, an object's identity, and how an API server's failure is sorted (retry or not)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from promoter.errors import PermanentError, TemporaryError

APP_LABEL = "promoter.dev/app"
PROMOTION_LABEL = PROMOTION_ANNOTATION = "promoter.dev/promotion"
APPLIED_ANNOTATION = "promoter.dev/applied"  # the hash of what promoter applied to the object
MANAGER = "promoter"
INVENTORY = "promoter-inventory-{app}"
INVENTORY_LABEL = APP_LABEL + "-inventory"  # on an inventory: the app it belongs to
APPLY_CONCURRENCY = 8
MISSING_FOR_S = 30.0  # how long a kind the cluster did not serve after a fresh discovery is taken as missing
Ident = tuple[str, str, str, str]
Ref = tuple[str, str, str, str]  # (group, kind, namespace, name): what an inventory lists, version aside


def plain(_client: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The dynamic client's answer as the plain JSON it was (its ResourceInstance is slow to build)."""
    return data


def applied_hash(obj: dict[str, Any]) -> str:
    """The hash of an object as promoter applies it (its own annotation left out)."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_ANNOTATION}
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def contains(live: Any, want: Any) -> bool:
    """Whether `live` holds every field of `want` with the same value (a list: item by item)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(contains, live, want))
    return bool(live == want)


def ref_of(obj: dict[str, Any]) -> Ref:
    meta = obj.get("metadata") or {}
    group = obj["apiVersion"].rpartition("/")[0]
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def shown_ref(ref: Ref) -> str:
    return "/".join(p for p in (ref[1], ref[2], ref[3]) if p)


def where_of(obj: dict[str, Any]) -> str:
    """Kind/namespace/name, as a person reads an object."""
    meta = obj["metadata"]
    return "/".join(p for p in (obj["kind"], meta.get("namespace", ""), meta["name"]) if p)


def ident_of(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def first_error(errors: list[BaseException]) -> BaseException:
    """Of the errors of concurrent applies, the one to raise: a permanent one (the manifests' fault,
    which no retry mends) before a temporary one, else the first."""
    return next((e for e in errors if isinstance(e, PermanentError)), errors[0])


def api_error(e: Exception, what: str) -> Exception:
    """Sort an API failure: 5xx, 429 and transport errors retry; the rest is the manifests' fault."""
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None) or type(e).__name__
    if status is None or status >= 500 or status == 429:
        return TemporaryError(f"{what}: the API server answered {status or reason}; retrying")
    body = getattr(e, "body", "") or ""
    try:  # a Status: its message says what the server refused (an invalid object names each field)
        message = str(json.loads(body).get("message") or "")
    except (ValueError, TypeError, AttributeError):
        message = ""
    return PermanentError(
        f"{what}: {status} {reason}: {message[:400]}"
        if message
        else f"{what}: {status} {reason} {str(body)[:200]}".strip()
    )
