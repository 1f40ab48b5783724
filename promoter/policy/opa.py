"""The `opa` backend: a real OPA server over its Data API, through opa-python-client.

The server serves `policies/` (docker-compose mounts it, `--ignore '*_test.rego'`); this backend puts
the METADATA document at `data.policy_metadata` once per policy revision and asks
`POST /v1/data/promoter/decision`. Unreachable, slow or erroring, it raises, and `decide` denies.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from opa_client import OpaClient

from promoter.errors import BadInput
from promoter.policy import PolicyBundle, register


class OpaEngine:
    name = "opa"

    def __init__(self, url: str, timeout_s: float = 5.0, token: str | None = None) -> None:
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
        self._pushed: set[str] = set()
        self._lock = threading.Lock()

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._lock:
                if bundle.revision not in self._pushed:
                    self.client.update_or_create_data(bundle.metadata, "policy_metadata")
                    self._pushed.add(bundle.revision)
            answer = self.client.query_rule(input_doc, "promoter", "decision")
        except Exception as e:  # noqa: BLE001 - say where, never the token
            raise RuntimeError(f"OPA at {self.url}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        if "result" not in answer:
            raise RuntimeError(f"OPA at {self.url} has no data.promoter.decision (are the policies loaded?)")
        result: dict[str, Any] = answer["result"]
        return result

    def warm(self, bundle: PolicyBundle) -> None:
        """Nothing to do here: the OPA server compiles its own policies."""


@register("opa")
def _factory(url: str, timeout_s: float = 5.0, token: str | None = None) -> OpaEngine:
    return OpaEngine(url, timeout_s, token)
