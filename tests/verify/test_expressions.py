"""The `success` language of `verify` checks (promoter.verify): what it accepts and how it judges a
result, that it never evaluates Python, and that a bad expression or a bad `verify` entry in
environment.yaml is refused as it loads, in one line naming the file and the key; `{{app}}` and
`{{env}}` substitution; the worker's PROMOTER_PROMETHEUS_URL."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from promoter.environments import parse_environment
from promoter.errors import BadInput
from promoter.secrets import redact
from promoter.settings import Settings
from promoter.stack import free_port
from promoter.verify import MeasureError, check_http, holds, parse_success, query_prometheus, substitute, verdict


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        ("result < 0.01", 0.005, True),
        ("result < 0.01", 0.2, False),
        ("result <= 1", 1.0, True),
        ("result >= 0.99", 0.98, False),
        ("result == 200", 200.0, True),
        ("result != 0", 0.0, False),
        ("0.5 > result", 0.4, True),  # `result` on either side
        ("result > -1", -0.5, True),
        ("result < 1e-3", 0.0005, True),
        ("result < .5", 0.25, True),
        ("result > 1 and result < 3", 2.0, True),
        ("result > 1 and result < 3", 3.0, False),
        ("result < 1 or result > 3", 4.0, True),
        ("not result > 1", 0.0, True),
        ("not (result > 1 or result < 0)", 0.5, True),
        ("result > 1 or result < 3 and result > 2", 0.0, False),  # `and` binds tighter than `or`
        ("(result > 1 or result < 3) and result > 2", 0.0, False),
        ("not not result == 2", 2.0, True),
        ("  result<0.01  ", 0.0, True),
    ],
)
def test_expressions_judge_the_result(text: str, result: float, expected: bool) -> None:
    assert holds(parse_success(text), result) is expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "success is empty"),
        ("result", "ends too early"),
        ("result <", "ends too early"),
        ("result < x", "expected `result` or a number, got 'x'"),
        ("1 < 2", "must compare `result` with a number"),
        ("result < result", "must compare `result` with a number"),
        ("result << 1", "expected `result` or a number, got '<'"),
        ("result < 1 and", "ends too early"),
        ("(result < 1", "'(' is not closed"),
        ("result < 1)", "unexpected ')'"),
        ("result < 1 result > 2", "unexpected 'result'"),
        ("__import__('os').system('true')", "unexpected"),
        ("result.__class__ < 1", "unexpected"),
        ("result < 1; import os", "unexpected"),
        ("-result < 1", "expected `result` or a number"),
        ("result = 1", "unexpected '= 1' at character 7"),
        ("result < 1" + " and result < 1" * 100, "longer than 500"),
        ("result != nan", "expected `result` or a number, got 'nan'"),  # float() would take these
        ("result < inf", "expected `result` or a number, got 'inf'"),
        ("result < Infinity", "got 'Infinity'"),
        ("result < 1e999", "too large"),
    ],
)
def test_anything_else_is_one_line_and_never_evaluated(text: str, said: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_success(text)
    assert said in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("depth", [1, 60, 240])
def test_deep_nesting_parses_or_is_one_line_never_a_crash(depth: int) -> None:
    text = "(" * depth + "result<1" + ")" * depth  # up to 488 characters: within the length limit
    try:
        assert holds(parse_success(text), 0.0)
    except ValueError as e:
        assert str(e) == "success is nested too deeply"
    with pytest.raises(ValueError, match="nested too deeply|is not closed"):
        parse_success("(" * 400 + "result<1")


def test_substitution_and_verdicts() -> None:
    assert substitute('x{app="{{app}}",env="{{ env }}"}', "demo", "staging") == 'x{app="demo",env="staging"}'
    assert substitute("https://{{app}}.{{env}}.example/{{other}}", "a", "b") == "https://a.b.example/{{other}}"
    assert verdict(failed=0, taken=2, count=3, failure_limit=0) is None
    assert verdict(failed=0, taken=3, count=3, failure_limit=0) is True
    assert verdict(failed=1, taken=1, count=3, failure_limit=0) is False
    assert verdict(failed=1, taken=3, count=3, failure_limit=1) is True
    assert verdict(failed=2, taken=2, count=6, failure_limit=1) is False


ENV = "name: staging\norder: 2\n"


@pytest.mark.parametrize(
    ("verify", "said"),
    [
        (
            "verify:\n  - name: e\n    prometheus: {query: up, success: 'result <'}\n",
            "env.yaml: verify.0.prometheus.success: the expression ends too early",
        ),
        (
            "verify:\n  - name: e\n    prometheus: {query: up, success: 'eval(1)'}\n",
            "env.yaml: verify.0.prometheus.success: expected `result` or a number, got 'eval'",
        ),
        ("verify:\n  - name: e\n", "env.yaml: verify.0: verify check 'e' needs exactly one of"),
        (
            "verify:\n  - name: e\n    http: {url: 'http://x'}\n    prometheus: {query: up, success: result > 0}\n",
            "needs exactly one of prometheus or http",
        ),
        (
            "verify:\n  - name: e\n    http: {url: 'http://x'}\n    interval: 0s\n",
            "interval must be a duration above 0",
        ),
        ("verify:\n  - name: e\n    http: {url: 'http://x'}\n    count: 0\n", "verify.0.count:"),
        ("verify:\n  - name: e\n    http: {url: 'http://x'}\n    failure_limit: -1\n", "verify.0.failure_limit:"),
        ("verify:\n  - name: E!\n    http: {url: 'http://x'}\n", "verify.0.name:"),
        ("verify:\n  - name: e\n    http: {url: 'http://x'}\n    wait: 1s\n", "verify.0.wait: unknown key"),
        ("verify:\n  - name: e\n    http: {url: 'http://x'}\n    interval: soon\n", "verify.0.interval:"),
        # a check that can never fail: every measurement could fail and it would still pass
        (
            "verify:\n  - name: e\n    http: {url: 'http://x'}\n    count: 3\n    failure_limit: 3\n",
            "failure_limit (3) must be below count (3)",
        ),
        ("verify:\n  - name: e\n    http: {url: 'http://x'}\n    count: 201\n", "verify.0.count:"),
        ("verify:\n  - name: e\n    http: {url: 'file:///etc/passwd'}\n", "must be an http:// or https:// URL"),
        (
            "verify:\n  - name: e\n    prometheus: {query: up, success: result > 0, url: 'ftp://p'}\n",
            "verify.0.prometheus.url: url must be an http:// or https:// URL",
        ),
    ],
)
def test_a_bad_verify_entry_is_one_line_naming_file_and_key(verify: str, said: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_environment(ENV + verify, "env.yaml", "staging")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("env.yaml: verify.")
    assert said in message, message


def test_a_good_verify_list_loads() -> None:
    config = parse_environment(
        ENV
        + "verify:\n"
        + "  - name: error-rate\n"
        + "    prometheus:\n"
        + '      query: sum(rate(http_requests_total{app="{{app}}",code=~"5.."}[1m]))\n'
        + "      success: result < 0.01\n"
        + "    interval: 10s\n    count: 6\n    failure_limit: 1\n"
        + "  - name: smoke\n    http: {url: 'https://{{app}}.staging.example/healthz', expect_status: 200}\n",
        "env.yaml",
        "staging",
    )
    first, smoke = config.verify
    assert first.prometheus is not None and first.count == 6 and first.interval is not None
    assert first.interval.total_seconds() == 10 and first.failure_limit == 1
    assert smoke.http is not None and smoke.count == 1 and smoke.http.expect_status == 200


def test_the_worker_s_prometheus_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROMOTER_PROMETHEUS_URL, else the running stack's (stack.json); anything but an http(s) URL is one
    line; a password in it is masked wherever a message could show it."""
    monkeypatch.delenv("PROMOTER_PROMETHEUS_URL", raising=False)
    (tmp_path / "stack.json").write_text(json.dumps({"prometheus_url": "http://127.0.0.1:9999"}))
    assert Settings.load(str(tmp_path)).prometheus_url == "http://127.0.0.1:9999"
    monkeypatch.setenv("PROMOTER_PROMETHEUS_URL", "https://ops:hunter2@prometheus.example")
    assert Settings.load(str(tmp_path)).prometheus_url == "https://ops:hunter2@prometheus.example"
    assert "hunter2" not in redact("cannot reach https://ops:hunter2@prometheus.example/api/v1/query")
    monkeypatch.setenv("PROMOTER_PROMETHEUS_URL", "prometheus:9090")
    with pytest.raises(BadInput) as refused:
        Settings.load(str(tmp_path))
    assert str(refused.value) == (
        "PROMOTER_PROMETHEUS_URL must be an http:// or https:// URL such as http://localhost:9090, "
        "not 'prometheus:9090'"
    )


def test_a_prometheus_behind_basic_auth_gets_the_url_s_credentials_as_a_header_never_in_a_message(
    httpserver: HTTPServer,
) -> None:
    """urllib would take `user:password@` for part of the host name: the header carries them instead, and
    no message ever shows the password."""
    answer = {"status": "success", "data": {"resultType": "vector", "result": [{"value": [0, "0.5"]}]}}
    httpserver.expect_request(
        "/api/v1/query", headers={"Authorization": "Basic " + base64.b64encode(b"alice:s3cret pw").decode()}
    ).respond_with_json(answer)
    base = httpserver.url_for("/").rstrip("/").replace("http://", "http://alice:s3cret%20pw@")
    assert query_prometheus(base, "up") == 0.5
    dead = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(MeasureError) as refused:
        query_prometheus(dead, "up", timeout_s=2)
    assert "s3cret" not in str(refused.value) and "cannot be reached" in str(refused.value), refused.value
    with pytest.raises(MeasureError) as odd:  # a scheme that is no HTTP is a failed measurement, not a crash
        check_http("file:///etc/passwd", 200)
    assert "cannot be reached" in str(odd.value)
