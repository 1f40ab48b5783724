"""`promotions.Promotions` over Temporal's HTTP API, for the CLI commands that must start fast.

Temporal's frontend serves its gRPC API as HTTP/JSON too: the `/api/v1/namespaces/...` routes
(the server's `frontend.httpPort`, 7243 by default; `temporal server start-dev --http-port`; tested
here against Temporal Server 1.32, the embedded stack's). Speaking it needs only the standard
library. Importing the Temporal SDK's client loads hundreds of protobuf descriptors, and that is
most of a command's start-up. The answers are the gRPC client's: a test runs both against one
server and compares them.

Payloads travel whole (`metadata` and `data`, base64: the `application/json+no-payload-shorthand`
media type), both ways. The API's default shorthand renders a JSON payload as a JSON value, but it is
lossy: the dev server answers an empty list as `null`. Whole payloads are the bytes the worker wrote,
decoded by the same pydantic models as the SDK's converter. A payload in an encoding other than JSON
(a payload codec's encrypted bytes, say) is refused with a line that says to use gRPC instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from promoter import promotions, secrets
from promoter.errors import BadInput, PromoterError
from promoter.models import Decision, PromotionStatus, StageState, StageStatus
from promoter.settings import TemporalTLS, tls_refused

NOT_FOUND = 5  # gRPC status codes, as the HTTP API's error bodies carry them
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
UNAUTHENTICATED = 16
CALL_TIMEOUT_S = 20.0
DECIDE_DEADLINE_S = promotions.DECIDE_DEADLINE_S
PAGE_SIZE = 100
SETTING = "PROMOTER_TEMPORAL_HTTP_URL"
MEDIA_TYPE = "application/json+no-payload-shorthand"
JSON_PLAIN = base64.b64encode(b"json/plain").decode()


class Failed(Exception):
    """A Temporal error answered over HTTP: its gRPC status code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Temporal's HTTP API never redirects: a redirect is answered as the error it is, never followed, so
    the API key in the Authorization header cannot be carried to another address (or over plain http)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpPromotions:
    """Over https when `tls` is given (its CA bundle, client certificate and server name, as for gRPC),
    with `Authorization: Bearer API_KEY` when `api_key` is."""

    def __init__(
        self,
        url: str,
        namespace: str,
        identity: str = "promoter-cli",
        tls: TemporalTLS | None = None,
        api_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.identity = identity
        self.tls = tls
        self.api_key = api_key
        if (tls is not None or api_key) and not self.url.startswith("https://"):
            raise BadInput(
                f"{SETTING} is {self.url}, plain http, yet TLS is on (the PROMOTER_TEMPORAL_TLS* settings or an "
                "API key); set it to the HTTP API's https:// address"
            )

    # ------------------------------------------------------------------------------ the answers

    async def describe(self, workflow_id: str) -> promotions.Execution | None:
        return self._describe(workflow_id)

    def _describe(self, workflow_id: str, run_id: str | None = None) -> promotions.Execution | None:
        params = {"execution.runId": run_id} if run_id else None
        try:
            found = self._call("GET", f"workflows/{_part(workflow_id)}", params=params)
        except Failed as e:
            if e.code == NOT_FOUND:
                return None
            raise PromoterError(f"Temporal could not describe {workflow_id}: {e.message}") from None
        info = found.get("workflowExecutionInfo") or {}
        execution = info.get("execution") or {}
        queue = info.get("taskQueue") or ((found.get("executionConfig") or {}).get("taskQueue") or {}).get("name", "")
        return promotions.Execution(
            id=execution.get("workflowId", workflow_id),
            run_id=execution.get("runId", ""),
            status=_status(info.get("status")),
            task_queue=queue,
            memo=_memo(info),
            parent_id=(info.get("parentExecution") or {}).get("workflowId", ""),
        )

    async def status(self, execution: promotions.Execution) -> PromotionStatus:
        if execution.status == "COMPLETED":
            return PromotionStatus.model_validate_json(self._result(execution))
        return PromotionStatus.model_validate_json(_asked(self, execution))

    async def lift(self, execution: promotions.Execution) -> StageStatus:
        if execution.status not in ("COMPLETED", "RUNNING"):  # no such hold, cancelled, terminated: no result
            return promotions.lift_ended(self._why(execution))
        done = execution.status == "COMPLETED"
        return StageStatus.model_validate_json(self._result(execution) if done else _asked(self, execution))

    async def follow(
        self, workflow_id: str, run_id: str | None, seen: Callable[[PromotionStatus], None]
    ) -> PromotionStatus:
        """As the gRPC client follows, by asking for the run's state and its `status` query in turn."""
        status: PromotionStatus | None = None
        unreachable_since: float | None = None
        while True:
            try:
                execution = self._describe(workflow_id, run_id)
                unreachable_since = None
            except PromoterError as e:  # Temporal unreachable for a while: the outcome cannot be known from here
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > promotions.UNREACHABLE_FOR_S:
                    raise promotions.ConnectionLost(str(e)) from None
                await asyncio.sleep(0.3)
                continue
            if execution is None:
                raise PromoterError(f"no promotion {workflow_id}; `promoter list` shows the promotions")
            if execution.status == "COMPLETED":
                return PromotionStatus.model_validate_json(self._result(execution))
            try:
                status = PromotionStatus.model_validate_json(self._query(execution))
            except (Failed, PromoterError):  # a query can fail transiently (no worker yet); keep following
                if execution.status == "RUNNING":
                    status = None
            if execution.status != "RUNNING":  # closed without a result of its own
                final = status or PromotionStatus(id=workflow_id, app="", commit="")
                return promotions.ended(final, self._why(execution))
            if status is not None:
                seen(status)
            await asyncio.sleep(0.3)

    async def hold_pr(self, workflow_id: str, timeout_s: float = promotions.HOLD_PR_WAIT_S) -> StageStatus:
        deadline = time.monotonic() + timeout_s
        while True:  # until its PR is open and its gate waits, or it failed (no such hold)
            execution = self._describe(workflow_id)
            if execution is not None and execution.status == "FAILED":
                raise PromoterError(self._why(execution))
            stage: StageStatus | None = None
            if execution is not None:
                try:
                    stage = StageStatus.model_validate_json(self._query(execution))
                except Failed:  # its first workflow task has not run yet
                    stage = None
            if stage is not None and stage.state != StageState.OPENING_PR:
                return stage
            if time.monotonic() > deadline:
                raise PromoterError(f"{workflow_id} did not open its PR within {timeout_s:g} s; is a worker running?")
            await asyncio.sleep(0.1)

    async def decide(self, workflow_id: str, update: str, decision: Decision) -> StageStatus:
        """The update, sent again with the same update ID until it has an outcome: Temporal runs an
        update ID once and answers a repeat with the first one's outcome."""
        _answering(self, workflow_id)
        body = {
            "workflowExecution": {"workflowId": workflow_id},
            "request": {
                "meta": {"updateId": str(uuid.uuid4()), "identity": self.identity},
                "input": {"name": update, "args": {"payloads": [_json_payload(decision.model_dump_json())]}},
            },
            "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
        }
        deadline = time.monotonic() + DECIDE_DEADLINE_S
        attempt = 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                answer = self._call(
                    "POST", f"workflows/{_part(workflow_id)}/update/{update}", body, timeout_s=min(left, CALL_TIMEOUT_S)
                )
            except Failed as e:
                if e.code == DEADLINE_EXCEEDED:
                    continue
                if promotions.NOT_READY in e.message:  # the run's task is being retried: send it again soon
                    time.sleep(min(promotions.retry_pause(attempt), max(0.0, deadline - time.monotonic())))
                    attempt += 1
                    continue
                raise PromoterError(f"{update} refused: {e.message}") from None
            outcome = answer.get("outcome")
            if not outcome:
                continue  # admitted or accepted, not yet completed: ask again for its outcome
            if "failure" in outcome:
                raise PromoterError(f"{update} refused: {_deepest(outcome['failure'])}")
            return StageStatus.model_validate_json(_first(outcome.get("success"), f"the {update} update"))
        raise PromoterError(
            f"{update} of {workflow_id} had no answer within {DECIDE_DEADLINE_S:g}s; is a worker running? "
            f"(`promoter status {workflow_id}` says)"
        )

    async def listing(self, query: str, page_size: int = PAGE_SIZE) -> AsyncIterator[promotions.Listed]:
        token = ""
        while True:
            params = {"query": query, "pageSize": str(page_size)}
            if token:
                params["nextPageToken"] = token
            try:
                page = self._call("GET", "workflows", params=params)
            except Failed as e:
                raise PromoterError(f"Temporal could not list promotions: {e.message}") from None
            for found in page.get("executions") or []:
                execution = found.get("execution") or {}
                fields = (found.get("searchAttributes") or {}).get("indexedFields") or {}
                values = {key: _value(fields[key]) for key in promotions.INDEXED if key in fields}
                yield promotions.Listed(
                    id=execution.get("workflowId", ""),
                    run_id=execution.get("runId", ""),
                    status=_status(found.get("status")),
                    memo=_memo(found),
                    attributes={key: str(value) for key, value in values.items() if value},
                    started_at=_time(found.get("startTime")),
                    closed_at=_time(found.get("closeTime")),
                )
            token = page.get("nextPageToken") or ""
            if not token:
                return

    # ------------------------------------------------------------------------------ the calls

    def _query(self, execution: promotions.Execution, timeout_s: float = promotions.QUERY_TIMEOUT_S) -> bytes:
        """The `status` query's answer (of a promotion, or of the lift of a hold), as JSON."""
        answer = self._call(
            "POST",
            f"workflows/{_part(execution.id)}/query/{promotions.STATUS_QUERY}",
            {
                "execution": {"workflowId": execution.id, "runId": execution.run_id},
                "query": {"queryType": promotions.STATUS_QUERY},
            },
            timeout_s=timeout_s,
        )
        return _first(answer.get("queryResult"), "the status query")

    def _why(self, execution: promotions.Execution) -> str:
        """Why a run closed without a result: its failure's innermost message, as the SDK's client says it."""
        event = self._close_event(execution)
        failure = (event.get("workflowExecutionFailedEventAttributes") or {}).get("failure")
        if isinstance(failure, dict):
            return _deepest(failure)
        reason = (event.get("workflowExecutionTerminatedEventAttributes") or {}).get("reason")
        return str(reason or execution.status.lower().replace("_", " ") or "ended")

    def _close_event(self, execution: promotions.Execution) -> dict[str, Any]:
        history = self._call(
            "GET",
            f"workflows/{_part(execution.id)}/history",
            params={
                "execution.runId": execution.run_id,
                "historyEventFilterType": "HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT",
            },
        )
        events = (history.get("history") or {}).get("events") or []
        return events[-1] if events and isinstance(events[-1], dict) else {}

    def _result(self, execution: promotions.Execution) -> bytes:
        done = self._close_event(execution).get("workflowExecutionCompletedEventAttributes")
        if done is None:
            raise PromoterError(f"Temporal has no result for {execution.id} run {execution.run_id}; try again")
        return _first(done.get("result"), "the promotion's result")

    def _pollers(self, task_queue: str, within: float = promotions.POLLER_STALE_S) -> int:
        found = self._call(
            "GET", f"task-queues/{_part(task_queue)}", params={"taskQueueType": "TASK_QUEUE_TYPE_WORKFLOW"}
        )
        polls = (_time(p.get("lastAccessTime")) for p in found.get("pollers") or [])
        return promotions.recent((at.timestamp() for at in polls if at is not None), within)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        url = f"{self.url}/api/v1/namespaces/{_part(self.namespace)}/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            url, data=None if body is None else json.dumps(body).encode(), method=method, headers=headers
        )
        context = self.tls.context if self.tls is not None else None  # None: urllib's default (the system's CAs)
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=timeout_s) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as e:
            raise self._failed(e) from None
        except TimeoutError:
            raise Failed(DEADLINE_EXCEEDED, f"no answer within {timeout_s:g}s") from None
        except (urllib.error.URLError, OSError) as e:
            # a refused handshake: the connection's error (URLError), or with TLS 1.3 the first read's (SSLError)
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            where = f"Temporal's HTTP API at {self.url}"
            if isinstance(reason, ssl.SSLError):
                raise tls_refused(where, SETTING, self.tls, *_tls_problem(reason)) from None
            if isinstance(reason, ConnectionResetError) and self.url.startswith("https://"):
                # the server hung up before its alert could be read: a refused client certificate, as a rule
                raise tls_refused(where, SETTING, self.tls, "closed", "") from None
            if isinstance(reason, TimeoutError):
                raise Failed(DEADLINE_EXCEEDED, f"no answer within {timeout_s:g}s") from None
            raise BadInput(
                f"cannot reach Temporal's HTTP API at {self.url} ({_reason(reason)}); start the embedded stack "
                f"with `promoter up`, or set {SETTING} to the frontend's HTTP address (empty: use gRPC)"
            ) from None
        data = _json(raw)
        if not isinstance(data, dict):
            raise self._not_the_api("an answer that is not a JSON object")
        return data

    def _failed(self, e: urllib.error.HTTPError) -> Exception:
        data = _json(e.read())
        code = data.get("code") if isinstance(data, dict) else None
        if isinstance(code, int) and 0 < code <= 16 and isinstance(data.get("message"), str):  # a gRPC status
            message = secrets.redact(" ".join(data["message"].split()))
            if code in (UNAUTHENTICATED, PERMISSION_DENIED):
                return self._refused(message)
            return Failed(data["code"], message)
        if e.code in (401, 403):  # a proxy in front of the API refused the credentials
            return self._refused(f"HTTP {e.code}")
        return self._not_the_api(f"HTTP {e.code} without a Temporal error")

    def _refused(self, why: str) -> BadInput:
        return BadInput(
            f"Temporal's HTTP API at {self.url} refused this client ({why}); set PROMOTER_TEMPORAL_API_KEY (or "
            f"PROMOTER_TEMPORAL_TLS_CERT and _KEY) to credentials it accepts for namespace {self.namespace}"
        )

    def _not_the_api(self, what: str) -> BadInput:
        return BadInput(
            f"{self.url} is not Temporal's HTTP API ({what}); set {SETTING} to the frontend's HTTP address "
            "(empty: use gRPC)"
        )


def _asked(http: HttpPromotions, execution: promotions.Execution) -> bytes:
    """The `status` query's answer, or why no worker gave one."""
    if http._pollers(execution.task_queue) == 0:
        raise promotions.no_worker(execution.task_queue)
    why = ""
    for patience in (promotions.QUERY_TIMEOUT_S, promotions.PATIENCE_S):  # see promoter.promotions
        try:
            return http._query(execution, patience)
        except Failed as e:
            if e.code != DEADLINE_EXCEEDED:  # the worker answered with an error
                raise promotions.unanswered(execution.task_queue, e.message) from None
            why = e.message
    if http._pollers(execution.task_queue, promotions.SILENT_S + promotions.PATIENCE_S) == 0:
        raise promotions.no_worker(execution.task_queue)
    raise promotions.unanswered(execution.task_queue, why)


def _answering(http: HttpPromotions, workflow_id: str) -> None:
    """`no_worker` at once when no worker polls the run's task queue: an update would wait a minute for
    one. A worker that is there but slow to answer is left to the update."""
    execution = http._describe(workflow_id)
    if execution is None or execution.status != "RUNNING":
        return  # the update says why
    if http._pollers(execution.task_queue) == 0:
        raise promotions.no_worker(execution.task_queue)
    for patience in (promotions.QUERY_TIMEOUT_S, promotions.PATIENCE_S):  # as `_asked` asks
        try:
            http._query(execution, patience)
            return
        except Failed as e:
            if e.code != DEADLINE_EXCEEDED:  # answered with an error: a worker is there
                return
    if http._pollers(execution.task_queue, promotions.SILENT_S + promotions.PATIENCE_S) == 0:
        raise promotions.no_worker(execution.task_queue)  # else a worker polls: slow; the update waits


def _tls_problem(error: ssl.SSLError) -> tuple[str, str]:
    """(kind, detail) of a TLS failure in OpenSSL's words, for `settings.tls_refused`."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = error.verify_message or str(error)
        if "mismatch" in message:  # "Hostname mismatch, certificate is not valid for 'NAME'."
            name = re.search(r"'([^']*)'", message)
            return "name", name.group(1) if name else ""
        if error.verify_code in (2, 18, 19, 20, 21):  # no issuer among the CAs trusted, or self-signed
            return "unknown issuer", message
        return "server certificate", message
    reason = error.reason or ""
    if "CERTIFICATE_REQUIRED" in reason:
        return "certificate required", reason
    if "ALERT" in reason:  # e.g. TLSV1_ALERT_UNKNOWN_CA: the server does not trust the certificate presented
        return "alert", reason
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return "not tls", reason
    if isinstance(error, ssl.SSLEOFError):
        return "closed", reason
    return "other", f"{reason or error}"


def _part(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _reason(reason: object) -> str:
    text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    return " ".join(text.split()) or type(reason).__name__


def _status(name: object) -> str:
    return str(name or "WORKFLOW_EXECUTION_STATUS_RUNNING").removeprefix("WORKFLOW_EXECUTION_STATUS_")


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def _memo(info: dict[str, Any]) -> dict[str, Any]:
    fields = (info.get("memo") or {}).get("fields") or {}
    return {key: _value(value) for key, value in fields.items()}


def _json_payload(text: str) -> dict[str, Any]:
    return {"metadata": {"encoding": JSON_PLAIN}, "data": base64.b64encode(text.encode()).decode()}


def _raw(payload: Any) -> bytes:
    """One whole payload's JSON text; `null` for a null payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("metadata"), dict):
        raise PromoterError(
            f"Temporal's HTTP API did not answer whole payloads ({MEDIA_TYPE}); upgrade the Temporal Server, "
            f"or set {SETTING} to nothing to use gRPC"
        )
    encoding = base64.b64decode(payload["metadata"].get("encoding") or "").decode(errors="replace")
    if encoding == "binary/null":
        return b"null"
    if encoding != "json/plain":
        raise PromoterError(
            f"Temporal's HTTP API returned a payload in encoding {encoding[:40]!r}, which only the SDK can decode; "
            f"set {SETTING} to nothing to use gRPC"
        )
    return base64.b64decode(payload.get("data") or "")


def _value(payload: Any) -> Any:
    return json.loads(_raw(payload))


def _first(payloads: Any, what: str) -> bytes:
    values = payloads.get("payloads") if isinstance(payloads, dict) else None
    if not isinstance(values, list) or not values:
        raise PromoterError(f"Temporal's HTTP API returned no value for {what}; try again")
    return _raw(values[0])


def _deepest(failure: dict[str, Any]) -> str:
    """The innermost cause's message, first line: what the SDK's client shows for a failed update."""
    while isinstance(failure.get("cause"), dict):
        failure = failure["cause"]
    message = str(failure.get("message") or "failed")
    return message.splitlines()[0] if message else "failed"
