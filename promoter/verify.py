"""Metric verification (`verify:` in environment.yaml): the `success` expression language, one
Prometheus query over its HTTP API, one HTTP check, and a check's verdict over its measurements.

`success` is a small language of its own, parsed here and never given to Python's `eval`:

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expression ")" | comparison
    comparison := operand ("<" | "<=" | ">" | ">=" | "==" | "!=") operand
    operand    := "result" | a number (e.g. 0.01, -3, 1e-3)

e.g. `result < 0.01`, `result >= 0.99 and not (result > 1)`. A comparison needs `result` on at least
one side. Anything else is a `ValueError` of one line, which environment.yaml's loading reports as
bad input naming the file and key.

Every measurement fails closed: a Prometheus that cannot be reached, an error from it, an answer that
is not one number (an empty vector, several series), NaN or an infinity is a failed measurement,
never a pass. Nothing here imports the models: it takes strings and numbers, so environment.yaml's
model can check an expression while it loads.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION = 500  # characters: a `success` longer than this is a typo or an attack
TIMEOUT_S = 10.0  # one query or one HTTP check
_TOKEN = re.compile(
    r"\s*(?:(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<op><=|>=|==|!=|<|>)|(?P<paren>[()])|(?P<word>[A-Za-z_]+)|(?P<minus>-))"
)
_OPS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True)
class Compare:
    left: float | None  # None: `result`
    op: str
    right: float | None


@dataclass(frozen=True)
class Logic:
    op: str  # "and", "or", "not"
    args: tuple[Expr, ...]


Expr = Compare | Logic


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            shown = text[pos : pos + 10].strip()
            raise ValueError(f"unexpected {shown!r} at character {pos + 1}")
        out.append(next(v for v in match.groupdict().values() if v is not None))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("the expression ends too early")
        self.at += 1
        return token

    def parse(self) -> Expr:
        expr = self.or_()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r} after a complete expression")
        return expr

    def or_(self) -> Expr:
        args = [self.and_()]
        while self.peek() == "or":
            self.take()
            args.append(self.and_())
        return args[0] if len(args) == 1 else Logic("or", tuple(args))

    def and_(self) -> Expr:
        args = [self.not_()]
        while self.peek() == "and":
            self.take()
            args.append(self.not_())
        return args[0] if len(args) == 1 else Logic("and", tuple(args))

    def not_(self) -> Expr:
        if self.peek() == "not":
            self.take()
            return Logic("not", (self.not_(),))
        if self.peek() == "(":
            self.take()
            inner = self.or_()
            if self.peek() != ")":
                raise ValueError("a '(' is not closed")
            self.take()
            return inner
        left = self.operand()
        op = self.take()
        if op not in _OPS:
            raise ValueError(f"expected a comparison ({', '.join(_OPS)}) after an operand, got {op!r}")
        right = self.operand()
        if (left is None) == (right is None):
            raise ValueError("a comparison must compare `result` with a number")
        return Compare(left, op, right)

    def operand(self) -> float | None:
        token = self.take()
        sign = 1.0
        if token == "-":
            sign, token = -1.0, self.take()
        if token == "result" and sign > 0:
            return None
        if not isinstance(token, str) or not NUMBER.fullmatch(token):  # never float()'s nan, inf, Infinity
            raise ValueError(f"expected `result` or a number, got {token!r}")
        value = sign * float(token)
        if math.isinf(value):
            raise ValueError(f"the number {token!r} is too large")
        return value


def parse_success(text: str) -> Expr:
    """`text` parsed; a `ValueError` of one line when it is not in the language."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("success is empty; write a condition on `result`, e.g. result < 0.01")
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"success is longer than {MAX_EXPRESSION} characters")
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise ValueError("success is nested too deeply") from None


def holds(expr: Expr, result: float) -> bool:
    """Whether `expr` holds for `result` (a finite number: the caller fails NaN before asking)."""
    if isinstance(expr, Logic):
        if expr.op == "not":
            return not holds(expr.args[0], result)
        values = (holds(a, result) for a in expr.args)
        return all(values) if expr.op == "and" else any(values)
    left = result if expr.left is None else expr.left
    right = result if expr.right is None else expr.right
    return {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
        "==": left == right,
        "!=": left != right,
    }[expr.op]


def substitute(template: str, app: str, env: str) -> str:
    """`{{app}}` and `{{env}}` (spaces inside the braces allowed) replaced by the app's and environment's names."""
    return re.sub(r"\{\{\s*(app|env)\s*\}\}", lambda m: app if m.group(1) == "app" else env, template)


NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")  # a decimal number, as `success` writes one


class MeasureError(Exception):
    """A measurement that could not be taken: it fails, with this one line as its reason."""


def _without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`url` without a `user:password@` (urllib would take it for part of the host name), and the
    Basic `Authorization` header that carries it instead; the URL as messages may show it."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    token = base64.b64encode(
        f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}".encode()
    ).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def _open(url: str, timeout_s: float) -> Any:
    clean, headers = _without_credentials(url)
    if not clean.lower().startswith(("http://", "https://")):
        raise ValueError("only http:// and https:// URLs are measured")
    return urllib.request.urlopen(urllib.request.Request(clean, headers=headers), timeout=timeout_s)


def query_prometheus(base_url: str, query: str, timeout_s: float = TIMEOUT_S) -> float:
    """The one number `query` evaluates to now (Prometheus' `/api/v1/query`); `MeasureError` otherwise."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    shown = _without_credentials(base_url)[0]  # never a password in a message
    try:
        with _open(url, timeout_s) as answer:
            raw = answer.read(1 << 20)
    except urllib.error.HTTPError as e:  # a bad query is 400 with an error body
        raw = e.read(1 << 16)
        try:
            said = json.loads(raw).get("error") or f"HTTP {e.code}"
        except ValueError:
            said = f"HTTP {e.code}"
        raise MeasureError(f"Prometheus refused the query: {said}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:  # or a URL that cannot be
        raise MeasureError(f"Prometheus at {shown} cannot be reached: {getattr(e, 'reason', e)}") from None
    try:
        body = json.loads(raw)
        data = body["data"] if body.get("status") == "success" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MeasureError("Prometheus answered something that is not its API's JSON") from None
    if data is None:
        raise MeasureError(f"Prometheus answered an error: {body.get('error') or body.get('status')}")
    return _one_number(data)


def _one_number(data: dict[str, object]) -> float:
    kind, result = data.get("resultType"), data.get("result")
    sample: object = None
    if kind == "scalar" and isinstance(result, list):
        sample = result
    elif kind == "vector" and isinstance(result, list):
        if not result:
            raise MeasureError("the query returned no data (an empty vector)")
        if len(result) > 1:
            raise MeasureError(f"the query returned {len(result)} series, not one: aggregate them (e.g. sum(...))")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    else:
        raise MeasureError(f"the query returned a {kind}, not one number: make it an instant vector of one series")
    try:
        value = float(sample[1] if isinstance(sample, list) else "?")
    except (TypeError, ValueError, IndexError):
        raise MeasureError("Prometheus answered a sample that is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise MeasureError(f"the query returned {value} (no traffic, or a division by zero), which proves nothing")
    return value


def check_http(url: str, expect_status: int, timeout_s: float = TIMEOUT_S) -> int:
    """`url`'s status (one GET); `MeasureError` when it does not answer or answers another status."""
    shown = _without_credentials(url)[0]
    try:
        with _open(url, timeout_s) as answer:
            status = int(answer.status or 0)
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError, ValueError, TypeError, http.client.HTTPException) as e:
        raise MeasureError(f"{shown} cannot be reached: {getattr(e, 'reason', e)}") from None
    if status != expect_status:
        raise MeasureError(f"{shown} answered {status}, expected {expect_status}")
    return status


def verdict(failed: int, taken: int, count: int, failure_limit: int) -> bool | None:
    """A check's verdict after `taken` of `count` measurements, `failed` of them failed: False once
    more than `failure_limit` failed, True once all were taken within the limit, None while it runs."""
    if failed > failure_limit:
        return False
    return True if taken >= count else None
