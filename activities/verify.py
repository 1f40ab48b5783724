"""The `measure` activity: one measurement of one `verify` check (promoter.verify), `{{app}}` and
`{{env}}` substituted. A measurement that cannot be taken is a failed measurement in the result,
never an error to retry and never a pass: the workflow counts it against the check's failure_limit."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities import classified
from promoter import verify
from promoter.models import MeasureInput, Measurement
from promoter.secrets import redact


class VerifyActivities:
    def __init__(self, prometheus_url: str | None) -> None:
        self.prometheus_url = prometheus_url  # the worker's PROMOTER_PROMETHEUS_URL: never in history

    @activity.defn(name="measure")
    @classified
    def measure(self, req: MeasureInput) -> Measurement:
        check = req.check
        at = datetime.now(UTC)
        try:
            if check.prometheus is not None:
                url = check.prometheus.url or self.prometheus_url
                if not url:
                    raise verify.MeasureError(
                        "no Prometheus to ask: set the worker's PROMOTER_PROMETHEUS_URL (or the check's prometheus.url)"
                    )
                query = verify.substitute(check.prometheus.query, req.app, req.env)
                value = verify.query_prometheus(url, query)
                if not verify.holds(verify.parse_success(check.prometheus.success), value):
                    said = f"{check.prometheus.success} is false for {value:g}"
                    return Measurement(at=at, passed=False, value=value, error=said)
                return Measurement(at=at, passed=True, value=value)
            assert check.http is not None  # the model holds exactly one of the two
            url = verify.substitute(check.http.url, req.app, req.env)
            status = verify.check_http(url, check.http.expect_status)
            return Measurement(at=at, passed=True, value=float(status))
        except verify.MeasureError as e:
            return Measurement(at=at, passed=False, error=redact(str(e)))
