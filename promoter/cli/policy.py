"""`promoter policy test | trust | check | eval`: the Rego policies on this machine, for CI and
pre-commit hooks. No Temporal server is asked; `check` reads the CRDs from disk, not the cluster."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promoter.cli.common import AsJson, Exit, StateDir, app, out
from promoter.errors import PromoterError
from promoter.names import check as check_name
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.models import PolicyDecision, PolicyViolation
    from promoter.policy import PolicyBundle, PolicyEngine

policy_app = typer.Typer(no_args_is_help=True, help="Rego policies: unit tests, shift-left checks, evaluation.")
app.add_typer(policy_app, name="policy")
RepoOpt = Annotated[Path, typer.Option("--repo", help="the GitOps repository (its policies/ and environments/)")]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        metavar="table|line",
        help="table (the default on a terminal) or line: PATH:LINE: error[SEVERITY] RULE OBJECT: MESSAGE "
        "(fix: REMEDIATION), one finding a line, nothing when clean (the default otherwise, e.g. under pre-commit)",
    ),
]


@policy_app.command("test")
def policy_test(
    repo: RepoOpt = Path("."),
    as_json: AsJson = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="a line for every test, passed too")] = False,
) -> None:
    """Run every test_* rule of every *_test.rego on each engine; non-zero exit on any failure.
    Prints each failure and the counts (every test with -v)."""
    from promoter.policy import PolicyBundle
    from promoter.policy.goopa import INSTALL, available
    from promoter.policy.testing import run_tests, test_engines

    engines = test_engines()
    results = run_tests(PolicyBundle.from_dir(repo / "policies"), engines)
    if not results:
        raise PromoterError(f"no Rego tests under {repo / 'policies'}; write *_test.rego files with test_* rules")
    failed = [r for r in results if not r.passed]
    counts = {e.name: sum(1 for r in results if r.engines.get(e.name)) for e in engines}
    if as_json:
        print(
            json.dumps(
                {
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                    "engines": {name: {"passed": n, "failed": len(results) - n} for name, n in counts.items()},
                    "tests": [
                        {"name": r.name, "passed": r.passed, "error": r.error, "engines": r.engines} for r in results
                    ],
                }
            )
        )
    else:
        for r in results if verbose else failed:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            out.print(f"{mark} {r.name}" + (f"  — {r.error}" if r.error else ""))
        for name, n in counts.items():
            out.print(f"{name}: {n} of {len(results)} passed")
        if not available():
            out.print(f"opa-go: not installed, so OPA itself did not run these tests ({INSTALL})")
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise Exit(1 if failed else 0)


@policy_app.command("trust")
def policy_trust(as_json: AsJson = False, state_dir: StateDir = None) -> None:
    """Which revision of the rule files (policies/, environment.yaml, trust/) judges promotions now,
    and every rule change on main that is not used because no trusted key signed it (exit 1 when any)."""
    s = Settings.load(state_dir)
    rules = s.repository("cli").rules()
    if as_json:
        print(json.dumps(rules.model_dump(mode="json")))
    elif rules.root is None:
        out.print(
            f"no trust root is set (PROMOTER_TRUST_ROOT): main's rule files are used as they stand, "
            f"last changed in {rules.commit[:12]}; nothing checks who changed them",
            markup=False,
        )
    else:
        out.print(f"trusted rules revision: {rules.commit} (from the trust root {rules.root[:12]})", markup=False)
        for change in rules.untrusted:
            out.print(f"  untrusted: {change.commit[:12]} by {change.author}: {change.reason}", markup=False)
        if not rules.untrusted:
            out.print("every rule change on main since then is trusted", markup=False)
    raise Exit(1 if rules.untrusted or rules.root is None else 0)


@policy_app.command("check")
def policy_check(
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help="the environment whose rules apply (default: each PATH's: environments/ENV/APP/...)"
        ),
    ] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="check environments/ENV/APP")] = None,
    paths: Annotated[list[Path] | None, typer.Argument(metavar="[PATH]...", help="files or folders")] = None,
    repo: RepoOpt = Path("."),
    as_json: AsJson = False,
    output: FormatOpt = None,
) -> None:
    """Check manifests on disk against the policies (exit 1 on deny): for CI and pre-commit.

    Without --env, each PATH must lie in environments/ENV/APP/: every app folder a PATH touches is
    checked whole, with its environment's rules (what a pre-commit hook passes: the changed files).
    On a terminal a table; otherwise (or with --format=line) one line per finding, as linters print:
    PATH:LINE: error[SEVERITY] RULE OBJECT: MESSAGE (fix: REMEDIATION); nothing when all is clean."""
    import sys

    from promoter.policy import PolicyBundle

    if output not in (None, "table", "line"):
        raise PromoterError(f"--format {output!r}: choose table or line (or --json)")
    style = "json" if as_json else output or ("table" if sys.stdout.isatty() else "line")

    bundle = PolicyBundle.from_dir(repo / "policies")
    if env is None:
        if app_name is not None:
            raise PromoterError("--app needs --env")
        groups = _app_folders(repo, paths or [])
    else:
        check_name(env, "environment")
        targets = list(paths or [])
        if app_name is not None:
            targets.append(repo / "environments" / env / check_name(app_name, "app"))
        groups = [(env, app_name or "", targets)]
    if not groups or not any(targets for _, _, targets in groups):
        raise PromoterError("say what to check: --env ENV --app APP, or PATHs (files or folders)")
    settings, engine = Settings.load(), one_shot_engine()  # one of each, however many app folders
    allowed = True
    for group_env, group_app, targets in groups:
        verdict = _check_group(engine, bundle, repo, group_env, group_app, targets, settings.max_file_bytes, style)
        allowed = verdict and allowed
    raise Exit(0 if allowed else 1)


def _app_folders(repo: Path, paths: list[Path]) -> list[tuple[str, str, list[Path]]]:
    """(env, app, [its folder]) for every app folder the paths touch; an environment.yaml touches
    every app of its environment; files elsewhere (policies/, docs) are not manifests and are skipped."""
    root = repo.resolve()
    found: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            parts = path.resolve().relative_to(root).parts
        except ValueError:
            raise PromoterError(f"{path} is not inside the repository {repo}; give --env for files elsewhere") from None
        if len(parts) < 3 or parts[0] != "environments":
            continue
        env = check_name(parts[1], "environment")
        if len(parts) == 3 and parts[2] == "environment.yaml":
            for folder in sorted(p for p in (root / "environments" / env).iterdir() if p.is_dir()):
                found[(env, folder.name)] = folder
        else:
            folder = root / "environments" / env / parts[2]
            if folder.is_dir():  # a file beside the apps, or a deleted folder: nothing to check
                found[(env, check_name(parts[2], "app"))] = folder
    return [(env, app, [folder]) for (env, app), folder in sorted(found.items())]


def _check_group(
    engine: PolicyEngine,
    bundle: PolicyBundle,
    repo: Path,
    env: str,
    app: str,
    targets: list[Path],
    limit: int,
    style: str,
) -> bool:
    from datetime import UTC, datetime

    from promoter.environments import load_environment
    from promoter.models import PolicyCheckInput
    from promoter.policy import build_input, decide, schema_input
    from promoter.render import render_located

    if not (repo / "environments" / env / "environment.yaml").is_file():  # worded as every command words it
        envs = sorted(p.parent.name for p in (repo / "environments").glob("*/environment.yaml"))
        raise PromoterError(f"unknown environment '{env}'; environments: {', '.join(envs) or 'none'}")
    config = load_environment(repo / "environments" / env / "environment.yaml", env)
    objects: list[dict[str, Any]] = []
    sources: dict[str, tuple[str, int]] = {}
    for target in targets:
        found, where = render_located(target, limit)
        objects += found
        sources = {**where, **sources}
    now = datetime.now(UTC)
    req = PolicyCheckInput(
        promotion_id="check",
        app=app,
        commit="",
        author="",
        source_env=env,
        target_env=env,
        started_at=now,
        evaluated_at=now,
        environment=config,
        phase="check",
    )
    decision = decide(engine, bundle, build_input(req, objects, schema_input(config, objects, _disk_crds(repo, env))))
    title = f"{len(objects)} object(s) of {f'{app} in {env}' if app else env}"
    if style == "json":
        print(decision.model_dump_json())
    elif style == "line":
        for line in finding_lines(decision, _locator(repo, env, sources)):
            print(line)
    elif decision.deny or decision.warn or decision.excepted:
        from promoter.report import decision_table

        out.print(decision_table(decision, title))
    else:
        out.print(f"{title}: allowed ({decision.engine}, revision {decision.revision})", markup=False)
    return decision.allow


LEVELS = (("deny", "error"), ("warn", "warning"), ("excepted", "note"))
UNMATCHED = "promoter.exception_unmatched"  # "exception ID (FILE) matches no finding ...": placed at its ID


def finding_lines(decision: PolicyDecision, where: Callable[[PolicyViolation], tuple[str, int]]) -> list[str]:
    """Each finding as a linter prints it: `PATH:LINE: LEVEL[SEVERITY] RULE OBJECT: MESSAGE (fix:
    REMEDIATION)`, LEVEL error (a denial), warning or note (excepted); `where` places it."""
    lines = []
    for field, level in LEVELS:
        for v in getattr(decision, field):
            path, line = where(v)
            message = f"{v.message} ({v.exception})" if v.exception else v.message
            fix = f" (fix: {v.remediation})" if v.remediation else ""
            text = f"{path}:{line}: {level}[{v.severity}] {v.rule} {v.object or '-'}: {message}{fix}"
            lines.append(" ".join(text.split()))  # one line, whatever a message holds
    return lines


def _locator(repo: Path, env: str, sources: dict[str, tuple[str, int]]) -> Callable[[PolicyViolation], tuple[str, int]]:
    """Where a finding is: its object's file and line; an exception's file and the line of its ID;
    anything else, the environment's environment.yaml (its rules judged it)."""
    import re

    def shown(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def where(v: PolicyViolation) -> tuple[str, int]:
        if v.object and v.object in sources:
            path, line = sources[v.object]
            return shown(Path(path)), line
        named = re.match(r"exception (\S+) \((\S+)\)", v.message) if v.rule == UNMATCHED else None
        if named and (repo / named[2]).is_file():
            lines = (repo / named[2]).read_text().splitlines()
            at = next((i for i, ln in enumerate(lines, 1) if ln.split(":")[0].strip("'\" ") == named[1]), 1)
            return shown(repo / named[2]), at
        return shown(repo / "environments" / env / "environment.yaml"), 1

    return where


def _disk_crds(repo: Path, env: str) -> Callable[[], tuple[list[dict[str, Any]], str]]:
    """The CustomResourceDefinitions in environments/ENV on disk, for the schema gate (no cluster is
    asked from a pre-commit hook: a custom resource without one there is reported not validated).
    Parsed as the policy activities parse main's (`crds_in`), read only when a custom resource asks."""

    def lookup() -> tuple[list[dict[str, Any]], str]:
        from activities.findings import crds_in

        paths = sorted((repo / "environments" / env).rglob("*.y*ml"))
        files = {str(path): path.read_bytes() for path in paths}
        return crds_in(files, str), " (the CLI does not read the cluster)"

    return lookup


@policy_app.command("eval")
def policy_eval(
    input_file: Annotated[Path, typer.Option("--input", help="a JSON (or YAML) policy input document")],
    repo: RepoOpt = Path("."),
) -> None:
    """Evaluate data.promoter.decision for an input document; prints the decision as JSON (exit 1 on a
    deny, as policy check)."""
    from promoter import yamlsafe
    from promoter.policy import PolicyBundle, decide

    if not input_file.is_file():
        raise PromoterError(f"{input_file} does not exist")
    doc = yamlsafe.load(input_file.read_bytes(), str(input_file))
    if not isinstance(doc, dict):
        raise PromoterError(f"{input_file}: the input must be an object")
    _warn_unjudged(doc, input_file)
    decision = decide(one_shot_engine(), PolicyBundle.from_dir(repo / "policies"), doc)
    print(decision.model_dump_json(indent=2))
    raise Exit(0 if decision.allow else 1)


def _warn_unjudged(doc: dict[str, object], input_file: Path) -> None:
    """One line on stderr when the input's environment names no concern: only the promotion rules (always
    enforced) judge it, and an allow would say nothing of its objects (the worker always sends them)."""
    environment = doc.get("environment")
    policy = environment.get("policy") if isinstance(environment, dict) else None
    named = [k for k in ("enforce", "warn_only") if isinstance(policy, dict) and policy.get(k)]
    if not named:
        print(
            f"warning: {input_file}: environment.policy names no enforce or warn_only concern, so only the "
            "promotion rules judge it (its objects are not checked); add e.g. "
            '"policy": {"enforce": ["kubernetes"]}',
            file=sys.stderr,
        )


def one_shot_engine() -> PolicyEngine:
    """The configured engine (chosen by `Settings.make_policy_engine`); the embedded one in process,
    for there is no engine process worth starting for one check."""
    from promoter.policy.embedded import EmbeddedEngine, InProcessEngine

    engine = Settings.load().make_policy_engine()
    return InProcessEngine() if isinstance(engine, EmbeddedEngine) else engine
