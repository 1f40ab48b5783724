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

from activities import sorted_errors
from promoter.errors import BadInput, TemporaryError
from promoter.models import NotifyInput

_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def resolve_url(url: str) -> str:
    """`${NAME}` is read from the worker's environment, so a secret URL stays out of history."""
    match = _VAR.match(url.strip())
    if match is None:
        return url
    value = os.environ.get(match.group(1))
    if not value:
        raise BadInput(f"webhook URL ${{{match.group(1)}}}: set {match.group(1)} in the worker's environment")
    return value


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
    @sorted_errors
    def notify(self, req: NotifyInput) -> int:
        url = resolve_url(req.url)
        if not url.startswith(("http://", "https://")):
            raise BadInput(f"webhook URL must be http(s); got one starting with {url.split(':', 1)[0]!r}")
        body = json.dumps(payload(req)).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "promoter"})
        host = urllib.parse.urlparse(url).netloc  # never the path: a Slack URL's path is its secret
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            raise TemporaryError(f"webhook at {host} answered {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TemporaryError(f"webhook at {host} unreachable: {reason}") from None
