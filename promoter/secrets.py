"""Secrets are never quoted. A value that the worker reads for a secret (a forge or OPA token, a
`${NAME}` webhook URL, a `*_TOKEN`/`*_SECRET`/`*_PASSWORD` variable) is registered here, and every
text that leaves the worker (an activity's error, which becomes workflow history and the status'
notices, and every log line) passes through `redact` first, which replaces each registered value
with `***`: in whole, and in the parts a message might quote (a URL's path, the token inside a header).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

MASK = "***"
MIN_LENGTH = 6  # shorter values would mask ordinary words; no real token is this short
_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|(^|[_.\-])PASS$|(^|[_.\-])PWD$|CREDENTIAL|PRIVATE_?KEY|API_?KEY|DSN$|WEBHOOK)",
    re.IGNORECASE,
)
_PAIR = re.compile(
    r"\b([\w.\-]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|PASS|PWD|CREDENTIAL|PRIVATE_?KEY|API_?KEY|DSN)[\w.\-]*)"
    r"(\s*[:=]\s*)(\S+)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # a URL that carries a password (postgres://u:SECRET@db)
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register(value: str | None) -> None:
    """Never let `value` be shown; for a URL, neither its path, its segments, its query nor its
    password (only its scheme and host stay readable, so an error can still say where)."""
    global _pattern
    value = (value or "").strip()
    if not value:
        return
    parts = {value}
    url = urlsplit(value) if value.startswith(("http://", "https://")) else None
    if url is not None:
        last = url.path.rstrip("/").rsplit("/", 1)[-1]  # e.g. the key at the end of a Slack webhook's path
        parts |= {url.path, url.query, url.password or "", last if len(last) >= 8 else ""}
    fresh = {p for p in parts if len(p) >= MIN_LENGTH} - _values
    if not fresh:
        return
    with _lock:
        _values.update(fresh)
        ordered = sorted(_values, key=len, reverse=True)  # longest first: a whole URL before its path
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def register_environment(env: Mapping[str, str] | None = None) -> None:
    """Every variable whose name says it holds a secret (a token, a password, a webhook)."""
    for name, value in (os.environ if env is None else env).items():
        if _SECRET_NAME.search(name) and not name.endswith("_FILE"):
            register(value)


def redact(text: str) -> str:
    pattern = _pattern
    return text if pattern is None or not text else pattern.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """On a handler: the formatted message (and an exception's text) with every secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = redact(formatted)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def quoted(text: str) -> str:
    """Text that another program printed about the manifests (kustomize's error): every `NAME: value`
    or `NAME=value` whose name says it holds a secret, and every password in a URL, masked."""
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}<hidden>", text)
    return redact(_USERINFO.sub("://<hidden>@", text))
