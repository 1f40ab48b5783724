"""Secrets are never quoted: a `${NAME}` webhook whose value is a token, a URL with a secret path, or
a URL a client refuses; an unexpected error whose text carries a token; and log lines (with their
exception text). The end-to-end grep of logs, history, status and forge records is in
tests/cli/test_hostile_cli.py."""

from __future__ import annotations

import logging
import socket

import pytest
from temporalio.exceptions import ApplicationError

from activities import classified_errors
from activities.notify import NotifyActivities
from promoter import secrets
from promoter.models import NotifyInput

TOKEN = "ghp_plantedToken0123456789abcdef"
HOOK_KEY = "XyZplantedHookKey42"


def notice(url: str) -> NotifyInput:
    return NotifyInput(
        url=url,
        event="waiting",
        text="t",
        promotion_id="promote-demo",
        app="demo",
        env="dev",
        commit="c",
        state="awaiting_approval",
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TOKEN, "the webhook URL in ${PLANTED} is not an http(s) URL"),
        (f"https://hooks.example/{TOKEN} x", "the webhook URL in ${PLANTED} is not a valid URL"),
        (f"http://127.0.0.1:{closed_port()}/services/T0/B0/{HOOK_KEY}", "webhook at 127.0.0.1:"),
    ],
    ids=["bare-token", "token-in-url", "closed-port"],  # the port is random: ids must not name it (pytest-xdist)
)
def test_a_webhook_error_never_quotes_the_value_of_its_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("PLANTED", value)
    with pytest.raises(ApplicationError) as e:
        NotifyActivities(timeout_s=2).notify(notice("${PLANTED}"))
    message = e.value.message
    assert expected in message, message
    assert TOKEN not in message and HOOK_KEY not in message


def test_an_unexpected_error_is_retried_with_its_secrets_masked() -> None:
    secrets.register(TOKEN)
    with pytest.raises(ApplicationError) as e, classified_errors():
        raise ValueError(f"Authorization: Bearer {TOKEN} refused")
    assert e.value.message == "ValueError: Authorization: Bearer *** refused"
    assert e.value.type == "ValueError" and not e.value.non_retryable and e.value.__cause__ is None


def test_log_lines_and_their_exceptions_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    secrets.register(TOKEN)
    logger = logging.getLogger("promoter.test")
    caplog.handler.addFilter(secrets.RedactingFilter())
    try:
        raise RuntimeError(f"token {TOKEN}")
    except RuntimeError:
        logger.exception("failed with %s", TOKEN)
    text = caplog.text
    assert TOKEN not in text and "failed with ***" in text and "RuntimeError: token ***" in text


def test_secret_named_variables_are_registered_and_short_values_are_not() -> None:
    secrets.register_environment({"MY_API_TOKEN": "tok-secret-value-1", "PATH": "/usr/bin:/bin", "X_SECRET": "abc"})
    assert secrets.redact("tok-secret-value-1 /usr/bin abc") == "*** /usr/bin abc"
