"""Delivery metrics after DORA's four keys, from the GitOps repository's main alone (`promoter metrics`,
and the worker's `promoter_dora_*` gauges). docs/metrics.md defines each figure.

What they are read from is what `promoter history` reads (promoter.history): main's first-parent line,
where a promotion's merge (`Merge pull request #N from promote/<app>/<env>/<short>`) brings in the
branch commit naming the promoted commit (`Promoted-Commit`, and `Release-Set-App` per member of a
set), and a revert's merge (`... from revert/<app>/<env>/<short>`) brings in promoter's revert commit
naming the merge it reverts (`Reverts:`) and the hold it puts in place (`Promoter-Held`, promoter.holds).
One `git log` of the merges of main's first-parent line (bounded by `since`) reads them all; one more
run reads their branch commits, and a third the promoted commits' times.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from promoter import breakglass, history, holds
from promoter.errors import BadInput

Git = Callable[..., str]  # runs `git <args>` in the clone, returns its output
SCHEMA = 1  # the version of `promoter metrics --json`'s format (docs/metrics.md)
DAY = 86400
_LOG = "%H%x1f%P%x1f%ct%x1f%B%x1e"
_CHUNK = 1000  # commits named on one git command line
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass
class Deployment:
    """A promotion merged into an environment: one merge on main (a release set's too)."""

    env: str
    apps: list[str]  # the app, or every member of a release set
    pr_number: int
    merge: str  # the merge commit on main
    merged_at: int  # its committer time (Unix seconds)
    commit: str  # the promoted commit ("" when the branch commit does not name it)
    committed_at: int | None  # the promoted commit's committer time (None: not found)
    promotion: str = ""  # the promotion's ID (`Promoter-Promotion`)
    failed_by: str = ""  # the merge of the revert that reverted it or held its commit ("": not so far)
    position: int = 0  # its place among the merges of main's first-parent line read (0: the oldest); not in --json
    # it went through a freeze by a break-glass: its merge carries `Promoter-Break-Glass` (promoter.breakglass)
    break_glass: bool = False

    @property
    def lead_time(self) -> int | None:
        """Seconds from the promoted commit's commit time to its merge (never below 0)."""
        return None if self.committed_at is None else max(0, self.merged_at - self.committed_at)


@dataclass
class Revert:
    """A revert's merge into an environment: it reverts a promotion and holds its commit there."""

    env: str
    apps: list[str]
    pr_number: int
    merge: str
    merged_at: int
    reverts: str  # the merge it reverts (`Reverts:`), "" when neither commit says
    held: str  # the commit it holds out of `env` (`Promoter-Held`)
    restored_by: str = ""  # the merge of the next healthy promotion of its app(s) there ("": none yet)
    restored_at: int | None = None
    position: int = 0  # as Deployment's

    @property
    def time_to_restore(self) -> int | None:
        return None if self.restored_at is None else max(0, self.restored_at - self.merged_at)


@dataclass
class Delivery:
    """What main says was delivered since `since` (None: all of main), in main's order, oldest first."""

    main: str
    since: int | None
    deployments: list[Deployment] = field(default_factory=list)
    reverts: list[Revert] = field(default_factory=list)


def _entries(text: str, fields: int) -> list[list[str]]:
    return [p for p in (e.strip("\n").split("\x1f") for e in text.split("\x1e")) if len(p) == fields]


def _shown(git: Git, shas: Sequence[str], fmt: str, fields: int) -> list[list[str]]:
    """`fmt` of each commit named (a full object ID; anything else in a trailer is no commit, and one the
    clone lacks is left out), in as few git runs as the command line allows."""
    found: list[list[str]] = []
    unique = list(dict.fromkeys(s for s in shas if _OBJECT_ID.fullmatch(s)))
    for i in range(0, len(unique), _CHUNK):
        names = unique[i : i + _CHUNK]
        found += _entries(git("log", "--no-walk=unsorted", "--ignore-missing", f"--format={fmt}%x1e", *names), fields)
    return found


def _line(git: Git, main: str, since: int | None) -> list[list[str]]:
    """The merges of main's first-parent line, newest first: with `since`, those committed at or after it. Git's
    `--since` would stop at the first older commit (a person's commit dated before the merge under it);
    `--since-as-filter` (git 2.37) walks the whole line and keeps the newer ones. An older git reads it all."""
    if since is not None:
        bound = f"--since-as-filter={datetime.fromtimestamp(since, UTC):%Y-%m-%d %H:%M:%S} +0000"
        try:
            return _entries(git("log", "--first-parent", "--merges", f"--format={_LOG}", bound, main), 4)
        except Exception:  # noqa: BLE001 - a git before 2.37 does not know the option: filtered below instead
            pass
    return _entries(git("log", "--first-parent", "--merges", f"--format={_LOG}", main), 4)


def read(git: Git, main: str, since: int | None = None) -> Delivery:
    """Main's deployments and reverts merged at or after `since` (Unix seconds; None: all of main)."""
    # a message holding the separators could split into entries of its own: only well-formed ones count
    line = [e for e in _line(git, main, since) if _OBJECT_ID.fullmatch(e[0]) and e[2].isdigit()]
    times = {sha: int(at) for sha, _, at, _ in line}
    merges = []
    for position, (sha, parents, at, message) in enumerate(reversed(line)):  # oldest first
        kind = history.merge_of(message)
        second = (parents.split() + ["", ""])[1]
        if kind is not None and second and (since is None or int(at) >= since):
            merges.append(
                (kind, {"sha": sha, "parent": second, "at": at, "message": message, "position": str(position)})
            )
    branches = {sha: message for sha, message in _shown(git, [m["parent"] for _, m in merges], "%H%x1f%B", 2)}
    delivery = Delivery(main=main, since=since)
    for (number, what, app, env), m in merges:
        m["branch_message"] = branches.get(m["parent"], "")
        if what == "promote":
            delivery.deployments.append(_deployment(number, app, env, m))
        else:
            delivery.reverts.append(_revert(number, app, env, m))
    missing = [d.commit for d in delivery.deployments if d.commit and d.commit not in times]
    times.update({sha: int(at) for sha, at in _shown(git, missing, "%H%x1f%ct", 2) if at.isdigit()})
    for d in delivery.deployments:
        d.committed_at = times.get(d.commit)
    link(delivery.deployments, delivery.reverts)
    return delivery


def _deployment(number: int, app: str, env: str, merge: dict[str, str]) -> Deployment:
    branch = dict(holds.parse_trailers(merge["branch_message"]))
    return Deployment(
        env=env,
        apps=history.set_members("promote", merge) or [app],
        pr_number=number,
        merge=merge["sha"],
        merged_at=int(merge["at"]),
        commit=branch.get("Promoted-Commit", ""),
        committed_at=None,
        promotion=dict(holds.parse_trailers(merge["message"])).get(history.PROMOTION, ""),
        position=int(merge["position"]),
        break_glass=any(key == breakglass.GLASS for key, _ in holds.parse_trailers(merge["message"])),
    )


def _revert(number: int, app: str, env: str, merge: dict[str, str]) -> Revert:
    said = dict(holds.parse_trailers(merge["message"])) | dict(holds.parse_trailers(merge["branch_message"]))
    return Revert(
        env=env,
        apps=history.set_members("revert", merge) or [app],
        pr_number=number,
        merge=merge["sha"],
        merged_at=int(merge["at"]),
        reverts=said.get("Reverts", ""),
        held=dict(history.held(merge)).get(holds.HELD, ""),
        position=int(merge["position"]),
    )


def link(deployments: list[Deployment], reverts: list[Revert]) -> None:
    """Mark each promotion a revert reverted (the merge its `Reverts:` names; else the newest earlier
    promotion of its app(s) there whose promoted commit it holds) as failed, and find each revert's
    restore: the next promotion of its app(s) into its environment, after it on main, that no revert
    failed. By the order on main, not by the clock: a revert merged within the second of its promotion
    still comes after it."""
    by_merge = {d.merge: d for d in deployments}
    for r in reverts:
        target = by_merge.get(r.reverts)
        if target is None:
            target = next(
                (
                    d
                    for d in reversed(deployments)
                    if d.position < r.position and d.env == r.env and set(d.apps) & set(r.apps) and d.commit == r.held
                ),
                None,
            )
        if target is not None and not target.failed_by:
            target.failed_by = r.merge
    for r in reverts:
        restore = next(
            (
                d
                for d in deployments
                if d.position > r.position and d.env == r.env and set(d.apps) & set(r.apps) and not d.failed_by
            ),
            None,
        )
        if restore is not None:
            r.restored_by, r.restored_at = restore.merge, restore.merged_at


def median(values: Sequence[int]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count); None for none."""
    return float(statistics.median(values)) if values else None


def p90(values: Sequence[int]) -> float | None:
    """The 90th percentile by nearest rank: the ceil(0.9 n)-th smallest value; None for none."""
    return float(sorted(values)[math.ceil(0.9 * len(values)) - 1]) if values else None


@dataclass
class Figures:
    """The four figures of one environment over the window."""

    env: str
    deployments: int
    per_day: float
    lead_times: list[int]
    failed: int
    reverts: int
    restores: list[int]
    unrestored: int
    break_glass: int = 0  # deployments that went through a freeze by a break-glass

    def as_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "deployment_frequency": {"deployments": self.deployments, "per_day": self.per_day},
            "lead_time_seconds": {
                "count": len(self.lead_times),
                "median": median(self.lead_times),
                "p90": p90(self.lead_times),
            },
            "change_failure_rate": {
                "failed": self.failed,
                "merged": self.deployments,
                "rate": self.failed / self.deployments if self.deployments else None,
            },
            "time_to_restore_seconds": {
                "reverts": self.reverts,
                "restored": len(self.restores),
                "unrestored": self.unrestored,
                "median": median(self.restores),
                "p90": p90(self.restores),
            },
            "break_glass_deployments": self.break_glass,
        }


@dataclass
class Window:
    start: int  # `since`, else the first promotion's merge on main (Unix seconds)
    end: int  # when the figures were taken

    @property
    def days(self) -> float:
        """The window's length in days, at least 1 (a window shorter than a day counts as one)."""
        return max(self.end - self.start, DAY) / DAY


def figures(delivery: Delivery, envs: Sequence[str], now: int, app: str | None = None) -> tuple[Window, list[Figures]]:
    """Each environment's figures (in `envs`' order, then any other environment main names, by name)
    over the window, for `app` alone (its release sets too) or for every app."""
    deployments = [d for d in delivery.deployments if app is None or app in d.apps]
    reverts = [r for r in delivery.reverts if app is None or app in r.apps]
    first = min((d.merged_at for d in delivery.deployments), default=now)
    window = Window(start=delivery.since if delivery.since is not None else min(first, now), end=now)
    seen = sorted(({d.env for d in deployments} | {r.env for r in reverts}) - set(envs))
    result = []
    for env in [*envs, *seen]:
        here = [d for d in deployments if d.env == env]
        undone = [r for r in reverts if r.env == env]
        restores = [t for t in (r.time_to_restore for r in undone) if t is not None]
        result.append(
            Figures(
                env=env,
                deployments=len(here),
                per_day=len(here) / window.days,
                lead_times=[t for t in (d.lead_time for d in here) if t is not None],
                failed=sum(1 for d in here if d.failed_by),
                reverts=len(undone),
                restores=restores,
                unrestored=len(undone) - len(restores),
                break_glass=sum(1 for d in here if d.break_glass),
            )
        )
    return window, result


def report_json(delivery: Delivery, window: Window, figures: list[Figures], app: str | None) -> dict[str, Any]:
    """`promoter metrics --json` (schema 1, docs/metrics.md)."""
    shown = {f.env for f in figures}
    return {
        "schema": SCHEMA,
        "main": delivery.main,
        "app": app,
        "window": {
            "since": _iso(delivery.since) if delivery.since is not None else None,
            "start": _iso(window.start),
            "end": _iso(window.end),
            "days": window.days,
        },
        "environments": [f.as_json() for f in figures],
        "deployments": [
            {
                **_public(d),
                "merged_at": _iso(d.merged_at),
                "committed_at": _iso(d.committed_at),
                "lead_time_seconds": d.lead_time,
            }
            for d in delivery.deployments
            if d.env in shown and (app is None or app in d.apps)
        ],
        "reverts": [
            {
                **_public(r),
                "merged_at": _iso(r.merged_at),
                "restored_at": _iso(r.restored_at),
                "time_to_restore_seconds": r.time_to_restore,
            }
            for r in delivery.reverts
            if r.env in shown and (app is None or app in r.apps)
        ],
    }


def _public(record: Deployment | Revert) -> dict[str, Any]:
    fields = asdict(record)
    del fields["position"]
    return fields


def _iso(at: int | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


_SPAN = re.compile(r"(\d{1,5})([hdw])")


def parse_since(text: str, now: datetime) -> int:
    """`--since`: an ISO 8601 date or time (UTC unless it names its offset), or a span back from `now`
    (`12h`, `30d`, `2w`). Unix seconds; `BadInput` saying what to write otherwise."""
    value = text.strip()
    span = _SPAN.fullmatch(value)
    if span is not None:
        hours = int(span.group(1)) * {"h": 1, "d": 24, "w": 168}[span.group(2)]
        return int((now - timedelta(hours=hours)).timestamp())
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or not value[:4].isdigit():
        raise BadInput(
            f"--since {value[:40]!r} is not a date: give an ISO 8601 date or time (2026-11-01, "
            "2026-11-01T09:00:00Z) or a span back from now (12h, 30d, 2w)"
        )
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if at > now:
        raise BadInput(f"--since {value[:40]!r} is in the future: give a date before now")
    return int(at.timestamp())


# the worker's gauges (docs/metrics.md): name -> help; each with the label `env`, the timings also `quantile`
GAUGES = {
    "promoter_dora_deployments": "promotions merged into the environment in the last 30 days",
    "promoter_dora_deployments_per_day": "deployment frequency: promotions merged per day over the last 30 days",
    "promoter_dora_lead_time_seconds": "lead time for changes: the promoted commit's commit time to its merge",
    "promoter_dora_change_failure_rate": "promotions reverted (and held), over promotions merged (NaN: none merged)",
    "promoter_dora_time_to_restore_seconds": "a revert's merge to the next healthy promotion of its app there",
    "promoter_dora_break_glass_deployments": "promotions merged through a freeze by a break-glass in the last 30 days",
}
WORKER_WINDOW = timedelta(days=30)  # what the worker's gauges cover


def gauge_values(found: list[Figures]) -> list[tuple[str, dict[str, str], float]]:
    """(gauge, labels, value) of each environment's figures; NaN where there is no figure (yet)."""
    values: list[tuple[str, dict[str, str], float]] = []
    for f in found:
        row = f.as_json()
        env = {"env": f.env}
        values += [
            ("promoter_dora_deployments", env, float(f.deployments)),
            ("promoter_dora_deployments_per_day", env, f.per_day),
            ("promoter_dora_change_failure_rate", env, _value(row["change_failure_rate"]["rate"])),
            ("promoter_dora_break_glass_deployments", env, float(f.break_glass)),
        ]
        for quantile, key in (("0.5", "median"), ("0.9", "p90")):
            labels = {**env, "quantile": quantile}
            values.append(("promoter_dora_lead_time_seconds", labels, _value(row["lead_time_seconds"][key])))
            values.append(
                ("promoter_dora_time_to_restore_seconds", labels, _value(row["time_to_restore_seconds"][key]))
            )
    return values


def _value(figure: float | None) -> float:
    return math.nan if figure is None else float(figure)
