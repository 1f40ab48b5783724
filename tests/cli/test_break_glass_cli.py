"""`promoter break-glass` refuses what it cannot take before it reaches Temporal, each with exit 2 and one
line saying what to fix: an --until that has passed, lies more than 24 hours ahead or is neither an RFC
3339 time nor a span; an empty reason; a name that is no app or environment. `--until` as a span (90m,
4h) is counted from now; a break-glass run is shown and listed as one. (Its gate, its PR and what it
lets through: tests/workflows/test_break_glass.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promoter.cli.glass import until_of
from promoter.errors import BadInput
from promoter.stack import free_port


def run(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PROMOTER_STATE_DIR": str(state)}
    env["PROMOTER_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"  # nothing listens: refused before it
    return subprocess.run(
        [sys.executable, "-m", "promoter", "break-glass", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_until_is_a_time_or_a_span_within_24_hours() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert until_of("90m", now) == now + timedelta(minutes=90)
    assert until_of("24h", now) == now + timedelta(hours=24)
    assert until_of("2026-12-03T18:30:00+01:00", now) == datetime(2026, 12, 3, 17, 30, tzinfo=UTC)
    for bad, said in (
        ("25h", "more than 24 hours ahead"),
        ("2026-12-10T09:00:00Z", "more than 24 hours ahead"),
        ("2026-12-03T08:59:00Z", "has passed already"),
        ("0m", "has passed already"),
        ("3d", "is neither an RFC 3339 time"),
        ("2026-12-03T18:00:00", "is neither an RFC 3339 time"),
        ("tomorrow", "is neither an RFC 3339 time"),
    ):
        with pytest.raises(BadInput) as e:
            until_of(bad, now)
        assert said in str(e.value), (bad, e.value)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--until", "48h", "--reason", "incident"], "error: --until "),
        (["--until", "next week", "--reason", "incident"], "error: --until 'next week' is neither"),
        (["--until", "4h", "--reason", "  "], "error: a break-glass needs a reason: add --reason TEXT"),
        (["--until", "4h", "--reason", "incident", "--app", "Demo!"], "error: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], said: str, tmp_path: Path) -> None:
    base = ["--env", "prod", "--app", "demo"]
    r = run(*base, *args, state=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(said), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_break_glass_run_is_shown_and_listed_as_one() -> None:
    from promoter.cli.render import lift_status, list_row, title
    from promoter.models import PromotionState, StageState, StageStatus
    from promoter.names import promotion_id
    from promoter.promotions import Listed

    wid = "break-glass-demo-prod"
    assert promotion_id(wid) == wid  # `approve`, `reject` and `status` take its ID
    memo = {"app": "demo", "env": "prod", "commit": "", "break_glass_until": "2026-12-03T18:00:00Z"}
    waiting = StageStatus(env="prod", order=0, state=StageState.AWAITING_APPROVAL, approvals_required=2)
    st = lift_status(wid, "r1", "RUNNING", waiting, memo)
    assert (st.app, st.state) == ("demo", PromotionState.RUNNING)
    assert title(st) == "break-glass-demo-prod  break-glass of demo in prod  [running]"
    at = datetime(2026, 12, 3, 9, tzinfo=UTC)
    row = list_row(Listed(wid, "r1", "RUNNING", memo, {}, at, None), st)
    assert (row["kind"], row["app"]) == ("break-glass", "demo")
