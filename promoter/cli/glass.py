"""`promoter break-glass`: a time-boxed pass through a freeze for one app's promotions into one
environment, through a PR that the environment's `break_glass` approvers must approve (promoter.breakglass)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from promoter.cli.common import AsJson, StateDir, app, changed, client, out, run_async, whoami
from promoter.errors import BadInput, PromoterError
from promoter.names import check as check_name
from promoter.settings import Settings

_SPAN = re.compile(r"([0-9]{1,3})(m|h)")


def until_of(text: str, now: datetime) -> datetime:
    """`--until`: an RFC 3339 time (2026-12-03T18:00:00Z), or a span from now (90m, 4h); at most 24 hours
    ahead. Bad input saying what to write otherwise."""
    from promoter import breakglass

    span = _SPAN.fullmatch(text.strip())
    if span is not None:
        amount = int(span.group(1))
        until = now + (timedelta(minutes=amount) if span.group(2) == "m" else timedelta(hours=amount))
    else:
        try:
            until = breakglass.parse_time(text, "--until")
        except BadInput:
            raise BadInput(
                f"--until {text[:40]!r} is neither an RFC 3339 time (2026-12-03T18:00:00Z) nor a span (90m, 4h)"
            ) from None
    breakglass.check_until(until, now)
    return until.replace(microsecond=0)


@app.command("break-glass")
def break_glass(
    env: Annotated[str, typer.Option("--env", help="the frozen environment")],
    app_name: Annotated[str, typer.Option("--app", help="the app whose promotions may pass the freeze")],
    reason: Annotated[str, typer.Option(help="why (required; named on every promotion that uses it)")],
    until: Annotated[str, typer.Option(help="its end: an RFC 3339 time or a span (4h), at most 24 hours ahead")],
    requested_by: Annotated[str, typer.Option("--as", help="who asks")] = "",
    sign_key: Annotated[
        str | None,
        typer.Option(
            "--sign-key",
            envvar="PROMOTER_SIGNING_KEY",
            help="an OpenSSH private key: sign the request (required where ENV's approvals must be signed)",
        ),
    ] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """Let APP's promotions into ENV through a freeze until --until, through a PR that ENV's break_glass
    approvers must approve; it stops counting at its end by itself."""
    asked = (app_name, env, reason, until, requested_by, sign_key)
    run_async(_break_glass(Settings.load(state_dir), *asked, as_json=as_json))


async def _break_glass(
    s: Settings, app_name: str, env: str, reason: str, until: str, who: str, key: str | None, as_json: bool = False
) -> int:
    from promoter import api
    from promoter.models import LiftHoldInput

    check_name(app_name, "app")
    check_name(env, "environment")
    if not reason.strip():
        raise PromoterError("a break-glass needs a reason: add --reason TEXT")
    ends = until_of(until, datetime.now(UTC))
    who = who.strip() or whoami()
    temporal = await client(s)
    req = LiftHoldInput(app=app_name, env=env, commit="", requested_by=who, reason=reason, until=ends)
    if key:  # the asker, proven: the worker verifies it against trust/allowed_signers for --as
        from promoter import breakglass, signing

        req.statement = breakglass.request_statement(app_name, env, ends, who, reason, datetime.now(UTC))
        req.signature = signing.armor_to_line(signing.sign_file(req.statement.encode(), key))
    handle = await api.break_glass(temporal, s.task_queue, req)
    stage = await api.GrpcPromotions(temporal).hold_pr(handle.id)
    if as_json:
        pr = {"pr_number": stage.pr_number, "pr_url": stage.pr_url, "state": stage.state.value}
        changed(s, handle.id, handle.result_run_id, app=app_name, env=env, until=f"{ends:%Y-%m-%dT%H:%M:%SZ}", **pr)
        return 0
    out.print(f"{handle.id}: PR #{stage.pr_number} {stage.pr_url}", markup=False, highlight=False)
    out.print(f"{stage.message}; approve with `promoter approve {handle.id} --env {env} --as <you>`", markup=False)
    return 0
