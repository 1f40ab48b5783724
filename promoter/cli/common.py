"""What every command shares: the Typer app, the two consoles, the common options, the exit, and how
a command reaches Temporal (always through the client API: `promoter.api` and `Promotions`)."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promoter.errors import PromoterError
from promoter.names import check as check_name
from promoter.names import check_revision, workflow_id
from promoter.settings import DEFAULT_STATE_DIR, Settings

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from promoter.gitrepo import GitClone
    from promoter.models import PromotionStatus
    from promoter.promotions import Promotions


def state_path(given: str | None) -> Path:
    """--state-dir, else $PROMOTER_STATE_DIR, else .promoter: the same for every command."""
    return Path(given or os.environ.get("PROMOTER_STATE_DIR") or DEFAULT_STATE_DIR)


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Policy-gated GitOps promotion on Temporal.",
)


class LazyConsole:
    """rich's Console, made on first use: importing rich costs every command ~25 ms at start."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return self._console

    @property
    def is_terminal(self) -> bool:
        return self.real().is_terminal

    def print(self, *objects: RenderableType, markup: bool | None = None, highlight: bool | None = None) -> None:
        self.real().print(*objects, markup=markup, highlight=highlight)


out = LazyConsole()
err = LazyConsole(stderr=True)

StateDir = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        help="the embedded stack's state directory",
        show_default=f"$PROMOTER_STATE_DIR, else {DEFAULT_STATE_DIR}",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output (its format: docs/cli.md)")]
CommitOpt = Annotated[
    str | None, typer.Option("--commit", help="commit of main (default: the newest touching the source app folder)")
]
SetName = Annotated[
    str | None,
    typer.Option("--name", help="a release set's name (default: its apps joined by '-'); its ID is promote-NAME"),
]


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def run_async(coro: Awaitable[int]) -> None:
    import asyncio  # here, not at the top: `policy check` never needs an event loop

    raise Exit(asyncio.run(coro))  # type: ignore[arg-type]


def checked_request(app_name: str, to: str | None, commit: str | None) -> str:
    """The promotion's ID, once the app, the last environment and the commit asked for are checked:
    a bad one is refused before anything reaches Temporal."""
    wid = workflow_id(app_name)
    if to is not None:
        check_name(to, "environment")
    if commit is not None:
        check_revision(commit)
    return wid


def release(app_names: list[str], name: str | None) -> tuple[str, list[str]]:
    """(the promotion's subject, its members): one app alone, or a release set's name and apps."""
    for app_name in app_names:
        check_name(app_name, "app")
    if len(set(app_names)) != len(app_names):
        raise PromoterError("name each app of a release set once")
    if len(app_names) == 1:
        if name is not None:
            raise PromoterError("--name names a release set: give two apps or more")
        return app_names[0], []
    set_name = name if name is not None else "-".join(app_names)
    if name is None and len(set_name) > 50:
        raise PromoterError("the apps' names make too long a set name: give the set one with --name")
    return check_name(set_name, "release set"), app_names


async def client(s: Settings) -> Client:
    """The SDK's client, on a runtime that writes none of the SDK core's own log lines: its retry warnings
    (`temporalio_client::retry WARN`, with colour codes) would reach the user's stderr when the server goes
    away; each command says so in one line of its own instead."""
    from promoter.settings import connect

    return await connect(s, quiet_runtime())


def quiet_runtime() -> Runtime:
    from temporalio.runtime import Runtime, TelemetryConfig

    global _runtime
    if _runtime is None:
        _runtime = Runtime(telemetry=TelemetryConfig(logging=None, metrics=None))
    return _runtime


_runtime: Runtime | None = None


def changed(s: Settings, wid: str, run_id: str | None, **fields: object) -> None:
    """What a command that changes something prints with `--json`: one object naming the run it changed
    (its workflow ID, run ID and Web UI URL) and what it did."""
    print(json.dumps({"id": wid, "run_id": run_id, **fields, "url": s.workflow_url(wid, run_id)}))


async def promotions_of(s: Settings) -> Promotions:
    """How the everyday commands reach Temporal: its HTTP API when one is configured (the embedded stack
    serves it), which starts in half the time, else the SDK's gRPC client."""
    if s.temporal_http_url:
        from promoter.temporal_http import HttpPromotions

        identity = f"promoter-cli {whoami()}"
        tls = s.temporal_tls_config()  # as for gRPC: the CA bundle, client certificate and server name
        return HttpPromotions(s.temporal_http_url, s.namespace, identity, tls, s.temporal_api_key)
    from promoter.api import GrpcPromotions

    return GrpcPromotions(await client(s))


def whoami() -> str:
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - getpass raises whatever the platform does for no user name: then unknown
        return "unknown"


def check_known(repository: GitClone, app_name: str, env: str | None) -> None:
    """`PromoterError` naming the real ones when `env` is no environment of main, or `app_name` is in
    none of its environments: what a command that found nothing checks before it says "none yet"."""
    configs = repository.environments()
    envs = [c.name for c in configs]
    if env is not None and env not in envs:
        raise PromoterError(f"unknown environment '{env}'; environments: {', '.join(envs)}")
    apps: dict[str, None] = {}  # each once, in order (a list's `in` took 1.5 s over 3 x 5,000 apps)
    for name in envs:
        apps.update(dict.fromkeys(repository.environment_apps(name)[2]))
    if app_name not in apps:
        raise PromoterError(f"unknown app '{app_name}'; apps: {', '.join(apps) or 'none'}")


def print_status(st: PromotionStatus, drift: dict[str, dict[str, Any]], url: str | None) -> None:
    """A promotion's or lift's status as `promoter status` prints it: its stages, drift and link."""
    from promoter.cli.render import status_parts

    for part in status_parts(st, drift, url):
        if isinstance(part, str):
            out.print(part, markup=False, highlight=False)
        else:
            out.print(part)
