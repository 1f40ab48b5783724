"""Webhooks: a Slack-compatible JSON message per event. A failing webhook is retried a little and then
given up on by the workflow; it never fails a promotion."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

from temporalio import activity

from activities import classified
from promoter import secrets
from promoter.errors import BadInput, TemporaryError
from promoter.models import NotifyInput

_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def resolve_url(url: str) -> tuple[str, str]:
    """(the URL, how to name it in a message). `${NAME}` is read from the worker's environment, so a
    secret URL stays out of history; its value is registered as a secret and never quoted, in part or
    whole, whatever it holds (a URL, or by mistake a token)."""
    match = _VAR.match(url.strip())
    if match is None:
        return url, "the webhook URL"
    name = match.group(1)
    value = os.environ.get(name)
    if not value:
        raise BadInput(f"webhook URL ${{{name}}}: set {name} in the worker's environment")
    secrets.register(value)
    return value.strip(), f"the webhook URL in ${{{name}}}"


def payload(req: NotifyInput) -> dict[str, object]:
    """Slack reads `text`; other receivers get the same facts as fields."""
    return {
        "text": req.text,
        "event": req.event,
        "promotion": req.promotion_id,
        "app": req.app,
        "env": req.env,
        "commit": req.commit,
        "state": req.state,
        "pr_url": req.pr_url,
    }


class NotifyActivities:
    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    @activity.defn(name="notify")
    @classified
    def notify(self, req: NotifyInput) -> int:
        url, named = resolve_url(req.url)
        if _UNSAFE.search(url):  # http.client would refuse it, quoting the whole URL
            raise BadInput(f"{named} is not a valid URL; check it for spaces or stray characters")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:  # e.g. a port out of range
            raise BadInput(f"{named} is not a valid URL; check its host and port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"{named} is not an http(s) URL; set it to one like https://hooks.slack.com/services/…")
        host = parts.hostname + (f":{port}" if port else "")  # never the path: a Slack URL's path is its secret
        body = json.dumps(payload(req)).encode()
        try:
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "promoter"}
            )
        except ValueError:
            raise BadInput(f"{named} is not a valid URL; check it for spaces or stray characters") from None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            raise TemporaryError(f"webhook at {host} answered {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TemporaryError(f"webhook at {host} unreachable: {reason}") from None
        except ValueError as e:  # http.client refuses a URL with control characters, quoting it
            raise BadInput(f"{named} is not a valid URL ({type(e).__name__}); fix it") from None
