"""Payloads from Temporal's HTTP API are decoded only from their whole form: JSON exactly as the worker
wrote it, `null`, or a one-line refusal for what only the SDK can decode (a codec's encrypted bytes) and
for the lossy shorthand an older server might answer with. The commands over a real server are tested
in test_cli.py (the same answers as over gRPC) and test_hostile_cli.py (wrong URLs, no worker)."""

from __future__ import annotations

import base64
import json

import pytest

from promoter.errors import PromoterError
from promoter.temporal_http import _first, _raw, _value


def whole(encoding: str, data: bytes) -> dict[str, object]:
    encoded = base64.b64encode(encoding.encode()).decode()
    return {"metadata": {"encoding": encoded}, "data": base64.b64encode(data).decode()}


def test_json_payloads_are_the_bytes_the_worker_wrote() -> None:
    text = b'{"approvals": [], "n": 12345678901234567890}'
    assert _raw(whole("json/plain", text)) == text  # the shorthand would have answered `null` for the []
    assert _value(whole("json/plain", text)) == json.loads(text)
    assert _value(whole("binary/null", b"")) is None
    assert _first({"payloads": [whole("json/plain", b'"first"'), whole("json/plain", b'"second"')]}, "x") == b'"first"'


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (whole("binary/encrypted", b"\x00\x01"), "encoding 'binary/encrypted', which only the SDK can decode"),
        ({"approvals": None}, "did not answer whole payloads"),
        ("text", "did not answer whole payloads"),
    ],
)
def test_what_only_the_sdk_can_decode_is_refused_with_what_to_set(payload: object, said: str) -> None:
    with pytest.raises(PromoterError) as refused:
        _raw(payload)
    assert said in str(refused.value) and "PROMOTER_TEMPORAL_HTTP_URL" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_result_is_refused() -> None:
    for payloads in (None, {"payloads": []}, [whole("json/plain", b"1")]):
        with pytest.raises(PromoterError, match="returned no value for the result"):
            _first(payloads, "the result")
