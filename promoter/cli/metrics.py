"""`promoter metrics`: delivery figures after DORA's four keys, per environment, read from the GitOps
repository's main alone (promoter.metrics; the definitions are docs/metrics.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from promoter.cli.common import AsJson, StateDir, app, check_known, out
from promoter.errors import PromoterError
from promoter.names import check as check_name
from promoter.names import workflow_id
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.metrics import Figures, Window


@app.command()
def metrics(
    app_name: Annotated[
        str | None, typer.Option("--app", metavar="APP", help="only this app (and the release sets holding it)")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="only this environment")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="from DATE (2026-11-01, 2026-11-01T09:00:00Z) or a span (30d)"),
    ] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """Deployment frequency, lead time for changes, change failure rate and time to restore, per
    environment, read from the GitOps repository's main alone (no Temporal server needed)."""
    from promoter import metrics as figures_of

    if app_name is not None:
        workflow_id(app_name)
    if env is not None:
        check_name(env, "environment")
    now = datetime.now(UTC)
    start = figures_of.parse_since(since, now) if since is not None else None
    s = Settings.load(state_dir, stopped_stack=True)
    if not s.repo_url:
        raise PromoterError("no GitOps repository: set PROMOTER_REPO_URL (or use `--state-dir` of `promoter up`)")
    repository = s.repository("cli")
    delivery, names = repository.delivery(start)
    if env is not None and env not in names:
        check_known(repository, app_name or "", env)  # a mistyped environment: exit 2, naming the real ones
    apps = [d.apps for d in delivery.deployments] + [r.apps for r in delivery.reverts]
    if app_name is not None and not any(app_name in named for named in apps):
        check_known(repository, app_name, env)  # nothing of it in the window: is it an app at all?
    window, found = figures_of.figures(delivery, [env] if env else names, int(now.timestamp()), app_name)
    found = [f for f in found if env is None or f.env == env]
    if as_json:
        print(json.dumps(figures_of.report_json(delivery, window, found, app_name)))
        return
    for line in table(delivery.main, window, found, app_name):
        out.print(line, markup=False, highlight=False)


def table(main: str, window: Window, found: list[Figures], app_name: str | None) -> list[str]:
    """The lines `promoter metrics` prints: the window, then a row of figures per environment."""

    def day(at: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))

    which = f"app {app_name}" if app_name else "all apps"
    lines = [f"main @ {main[:7]}, {day(window.start)} to {day(window.end)} UTC ({window.days:.1f} days), {which}"]
    rows = [
        (
            "env",
            "deployments",
            "per day",
            "lead time median",
            "p90",
            "change failure rate",
            "restore median",
            "p90",
            "break-glass",
        ),
    ]
    for f in found:
        row = f.as_json()
        lead, failure, restore = row["lead_time_seconds"], row["change_failure_rate"], row["time_to_restore_seconds"]
        rate = "-" if failure["rate"] is None else f"{failure['failed']}/{failure['merged']} = {failure['rate']:.0%}"
        restored = f"{_span(restore['median'])}"
        if restore["unrestored"]:
            restored += f" ({restore['unrestored']} not restored)"
        rows.append(
            (
                f.env,
                str(f.deployments),
                f"{f.per_day:.2f}",
                _span(lead["median"]),
                _span(lead["p90"]),
                rate,
                restored,
                _span(restore["p90"]),
                str(f.break_glass),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return lines + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _span(seconds: float | None) -> str:
    """A duration as a person reads it: `-` for none, else `4d 3h`, `27h 20m`, `12m 5s`, `40s`."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 3:  # under three days in hours: 24h 30m reads better than 1d 0h
        return f"{days}d {hours}h" if hours else f"{days}d"
    hours += 24 * days
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
