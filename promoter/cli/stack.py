"""`promoter up`, `down` and `worker`: the embedded stack, and a worker against a Temporal server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer

from promoter.cli.common import Exit, StateDir, app, err, out, run_async, state_path
from promoter.settings import Settings


@app.command()
def up(
    repo: Annotated[Path, typer.Option(help="GitOps repository whose environments/ and policies/ seed origin")] = Path(
        "."
    ),
    state_dir: StateDir = None,
    detach: Annotated[bool, typer.Option("--detach", help="return once everything is up")] = False,
    port: Annotated[
        int | None, typer.Option(help="Temporal gRPC port (default: the last up's, else 7233, else a free one)")
    ] = None,
    ui_port: Annotated[
        int | None, typer.Option(help="Web UI port (default: the last up's, else 8233, else a free one)")
    ] = None,
) -> None:
    """Start the embedded stack: Temporal dev server with its Web UI, a worker, origin and local forge.
    A later `up` reuses the ports of the last one (so stored links stay valid); on a running stack it
    changes nothing; when a part of it died, it restarts that part."""
    from promoter.stack import Stack, alive, wait_until

    stack = Stack(state_path(state_dir))
    started = stack.start(repo, port=port, ui_port=ui_port)
    info = started.info
    if started.how == "running":
        moved = _asked_to_move(info, port, ui_port)
        if moved:
            err.print(f"error: {_running_line(stack.dir, info).split(';')[0]}; {moved}", markup=False)
            raise Exit(2)
        out.print(_running_line(stack.dir, info), markup=False)
        raise Exit(0)
    for line in started.lines:  # a port that changed: the links to its old one are dead
        err.print(f"warning: {line}", markup=False)
    if started.how == "restarted":
        out.print(_restarted_line(started.restarted, started.stopped, stack.logs), markup=False)
    _print_table(stack.dir, info)
    if detach:
        raise Exit(0)
    out.print("Press Ctrl-C to stop.")
    pids: dict[str, int] = info["pids"]  # type: ignore[assignment]
    try:
        wait_until(lambda: not all(alive(p) for p in pids.values()), float("inf"), "a stack process to exit", 0.5)
        err.print("error: a stack process exited; see the logs in " + str(stack.logs))
        raise Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.down()
    raise Exit(0)


def _asked_to_move(info: dict[str, object], port: int | None, ui_port: int | None) -> str:
    """What to do when `up` on a running stack asks for other ports ("" when it asks for none, or for
    those it has): a running server cannot move, and silence would leave the ports asked for unused."""
    now = {
        "--port": str(info["temporal_address"]).rsplit(":", 1)[1],
        "--ui-port": str(info["ui_url"]).rsplit(":", 1)[1],
    }
    asked = {flag: str(n) for flag, n in (("--port", port), ("--ui-port", ui_port)) if n is not None}
    other = {flag: n for flag, n in asked.items() if now[flag] != n}
    if not other:
        return ""
    flags = " ".join(f"{flag} {n}" for flag, n in other.items())
    where = ", ".join(f"{now[f]} ({f})" for f in other)
    return f"it listens on {where}: `promoter down`, then `promoter up {flags}` to move it"


def _restarted_line(restarted: tuple[str, ...], stopped: tuple[str, ...], logs: Path) -> str:
    """What `up` restarted: those that had stopped, and those it restarted with them (the worker keeps
    the old addresses of the clusters and the forge)."""
    dead = [p for p in restarted if p in stopped] or list(restarted)
    line = f"restarted {', '.join(dead)}, which had stopped"
    others = [p for p in restarted if p not in dead]
    return line + (f", and {', '.join(others)} with them" if others else "") + f" (logs in {logs})"


def _running_line(where: Path, info: dict[str, object]) -> str:
    """One line: the stack already runs, where, and on which addresses."""
    parts = [f"Temporal {info['temporal_address']}", f"UI {info['ui_url']}"]
    parts += [f"HTTP {info['temporal_http_url']}"] if info.get("temporal_http_url") else []
    parts += [f"forge {info['forge_url']}/pulls"] if info.get("forge_url") else []
    return f"the stack in {where} is already running ({', '.join(parts)}); `promoter down` stops it"


def _print_table(where: Path, info: dict[str, object]) -> None:
    out.print(f"Temporal UI   {info['ui_url']}")
    out.print(f"Temporal      {info['temporal_address']}")
    if info.get("temporal_http_url"):
        out.print(f"Temporal HTTP {info['temporal_http_url']}")
    if info.get("forge_url"):
        out.print(f"Forge         {info['forge_url']}/pulls")
    if info.get("prometheus_url"):
        out.print(f"Prometheus    {info['prometheus_url']}")
    out.print(f"origin        {info['repo_url']}")
    out.print(f"state         {where}")


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop what `promoter up` started (its state stays for the next `up`)."""
    from promoter.stack import Stack

    where = state_path(state_dir)
    stopped = Stack(where).down()
    out.print("stopped" if stopped else f"nothing running in {where}")
    raise Exit(0)


@app.command()
def worker(ready_file: Annotated[str | None, typer.Option(hidden=True)] = None) -> None:
    """Run a worker against PROMOTER_TEMPORAL_ADDRESS (default localhost:7233)."""
    import logging

    from promoter.secrets import install_log_filter
    from promoter.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_filter()  # every line: secrets masked
    run_async(_worker(Settings.load(), ready_file, run_worker))


async def _worker(
    settings: Settings, ready_file: str | None, runner: Callable[[Settings, str | None], Awaitable[None]]
) -> int:
    await runner(settings, ready_file)
    return 0
