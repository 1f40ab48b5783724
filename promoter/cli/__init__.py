"""The `promoter` command line. It parses and dispatches; each command is a function returning an exit
code: 0 success, 1 the promotion or check did not succeed, 2 bad input (one line saying what to fix).

A package by concern, each command talking to Temporal only through the client API (`promoter.api`
and the `Promotions` of `promoter.promotions`): `common` (the app, consoles, options, how a command
reaches Temporal), `stack` (up, down, worker), `promote` (promote, dry-run), `lift` (lift-hold, a
lift's status), `glass` (break-glass), `drift` (drift, history), `metrics` (metrics), `status` (status, approve, reject,
cancel, list), `policy` (policy ...), and `render` (the tables and lines they print). The modules are
imported in that order, which is the order `promoter --help` lists the commands in.
"""

from __future__ import annotations

import os
import sys

import typer

# isort: off
# each module registers its commands as it is imported: this order is the order `--help` lists them in
from promoter.cli import stack, promote, lift, glass, drift, metrics, status, policy

# isort: on
from promoter.cli.common import Exit, app, err
from promoter.cli.drift import _drift
from promoter.cli.render import difference as _difference
from promoter.cli.status import _listing
from promoter.errors import PromoterError

__all__ = [
    "_difference",
    "_drift",
    "_listing",
    "app",
    "drift",
    "glass",
    "lift",
    "main",
    "metrics",
    "policy",
    "promote",
    "run",
    "stack",
    "status",
]


def main(argv: list[str] | None = None) -> None:
    """Entry point. Exits through `os._exit` with the documented code: a Python process that used a
    Temporal client can otherwise abort at interpreter exit (temporalio/sdk-python#300, exit 134)."""
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """--help is click's own (exit 0); a usage error and our errors are one line each (exit 2)."""
    try:
        code = app(args=argv, prog_name="promoter", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except Exit as e:
        return e.code
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0))
    except typer.TyperException as e:  # click's usage errors (typer bundles click): one line, exit 2
        ctx = getattr(e, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join((e.format_message() if hasattr(e, "format_message") else str(e)).split())
        if message:  # empty: the help was shown instead (a group called with no command)
            err.print(f"error: {message}{where}", markup=False)
        return int(getattr(e, "exit_code", 2))
    except PromoterError as e:
        err.print(f"error: {' '.join(str(e).split())}", markup=False)
        return 2
    except Exception as e:  # noqa: BLE001 - an unexpected failure still exits with a line, not a trace
        err.print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", markup=False)
        return 1
