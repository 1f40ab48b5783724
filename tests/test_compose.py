"""docker-compose.yml's structure (no Docker engine runs here): the services of the production stack,
images pinned to versions, healthchecks, volumes, the one-shot setup order, and a worker environment
that `promoter worker` reads entirely (each variable is loaded into the worker's settings; a closed
one outside its set is refused as it is loaded); the OPA service's files, loaded as its command loads
them, compile in OPA's own engine, and its authorization policy allows a request only with the token
the opa-token service makes and the worker reads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from promoter.errors import BadInput
from promoter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_services_images_healthchecks_and_volumes() -> None:
    assert {
        "postgresql",
        "temporal",
        "temporal-ui",
        "opa",
        "opa-token",
        "gitea",
        "gitea-init",
        "seed",
        "k3s",
        "kubeconfig",
        "worker",
    } <= set(SERVICES)
    for name, svc in SERVICES.items():
        if "image" in svc:
            assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", svc["image"]), f"{name}: pin the image to a version"
        else:
            assert svc.get("build") == ".", f"{name}: built from this repository"
    for name in ("postgresql", "temporal", "opa", "gitea", "k3s", "worker"):
        assert "healthcheck" in SERVICES[name], f"{name} needs a healthcheck"
    declared = set(COMPOSE["volumes"])
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} is not declared"
            else:
                assert (ROOT / source).exists(), f"{name}: {source} does not exist in the repository"
    assert (ROOT / "Dockerfile").is_file() and (ROOT / "deploy" / "seed_gitea.py").is_file()


def test_setup_runs_in_order_before_the_worker() -> None:
    worker = SERVICES["worker"]["depends_on"]
    assert worker["seed"]["condition"] == "service_completed_successfully"
    assert worker["temporal"]["condition"] == "service_healthy"
    assert SERVICES["seed"]["depends_on"]["gitea-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["gitea-init"]["depends_on"]["gitea"]["condition"] == "service_healthy"
    opa = SERVICES["opa"]
    assert "./policies:/policies:ro" in opa["volumes"] and "*_test.rego" in opa["command"]
    assert opa["depends_on"]["opa-token"]["condition"] == "service_completed_successfully"
    assert worker["opa"]["condition"] == "service_healthy"


class Recording(dict[str, str]):
    """An environment that notes every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_worker_reads_every_variable_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dict(SERVICES["worker"]["environment"])
    token = tmp_path / "token"
    token.write_text("from-the-file\n")
    env["PROMOTER_FORGE_TOKEN_FILE"] = str(token)  # the compose secret's path, here
    opa_token = tmp_path / "opa-token"
    opa_token.write_text("opa-from-the-file")
    env["PROMOTER_OPA_TOKEN_FILE"] = str(opa_token)
    recording = Recording({**env, "HOME": str(tmp_path)})
    monkeypatch.setattr(os, "environ", recording)
    monkeypatch.chdir(tmp_path)  # no stack.json around
    s = Settings.load()
    ignored = set(env) - recording.read - {"KUBECONFIG"}  # KUBECONFIG: read by the Kubernetes client itself
    assert not ignored, f"`promoter worker` ignores {sorted(ignored)}"
    assert (s.forge, s.forge_repo, s.forge_url, s.forge_token) == (
        "gitea",
        "promoter/gitops",
        "http://gitea:3000",
        "from-the-file",
    )
    assert s.repo_url == "http://gitea:3000/promoter/gitops.git" and s.metrics_port == 9464
    assert s.temporal_address == "temporal:7233" and s.opa_url == "http://opa:8181" and s.review_poll_s == 15
    assert s.opa_token == "opa-from-the-file"
    assert "from-the-file" not in repr(s)


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("PROMOTER_FORGE", "bitbucket", "local, github, gitlab, gitea, forgejo"),
        ("PROMOTER_POLICY_ENGINE", "rego", "embedded, opa, opa-go"),
        ("PROMOTER_MERGE_METHOD", "fast-forward", "merge, squash, rebase"),
    ],
)
def test_a_closed_setting_outside_its_set_is_one_line_naming_it(
    variable: str, value: str, allowed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a closed setting fails as the settings are loaded, not when the worker first builds
    the adapter; compose's worker environment holds only values from each set."""
    assert SERVICES["worker"]["environment"].get(variable, allowed.split(", ")[0]) in allowed.split(", ")
    monkeypatch.setattr(os, "environ", {variable: value, "HOME": str(tmp_path)})
    monkeypatch.chdir(tmp_path)  # no stack.json around
    with pytest.raises(BadInput) as refused:
        Settings.load()
    assert str(refused.value) == f"{variable} must be one of {allowed}, not {value!r}"
    monkeypatch.setattr(os, "environ", {variable: "", "HOME": str(tmp_path)})  # set but empty: the default
    attribute = {"PROMOTER_FORGE": "forge", "PROMOTER_POLICY_ENGINE": "policy_engine"}.get(variable, "merge_method")
    assert getattr(Settings.load(), attribute) == getattr(Settings(), attribute)


def opa_token_script(root: Path) -> str:
    """The opa-token service's script, its volume at `root`, as a shell runs it (compose's `$$` is `$`)."""
    [script] = SERVICES["opa-token"]["command"]
    [volume] = SERVICES["opa-token"]["volumes"]
    name, mounted = volume.split(":")
    assert name in COMPOSE["volumes"] and mounted == "/opa-auth"
    root.mkdir(parents=True, exist_ok=True)  # the volume, as Docker makes it
    return str(script).replace("$$", "$").replace(mounted, str(root))


def test_the_token_is_made_once_and_the_worker_reads_what_opa_loads(tmp_path: Path) -> None:
    """opa-token's script, run here: a random token, written as the worker reads it
    (PROMOTER_OPA_TOKEN_FILE) and as OPA loads it (data.system.promoter), kept across runs."""
    subprocess.run(["sh", "-c", opa_token_script(tmp_path)], check=True)
    token = (tmp_path / "token").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert yaml.safe_load((tmp_path / "token.json").read_text()) == {"token": token}
    subprocess.run(["sh", "-c", opa_token_script(tmp_path)], check=True)
    assert (tmp_path / "token").read_text() == token  # a restart keeps it
    worker = SERVICES["worker"]
    assert worker["environment"]["PROMOTER_OPA_TOKEN_FILE"] == "/opa-auth/token"
    assert "opa-auth:/opa-auth:ro" in worker["volumes"] and "opa-auth:/opa-auth:ro" in SERVICES["opa"]["volumes"]
    assert "PROMOTER_OPA_TOKEN" not in worker["environment"]  # never written into the compose file


def test_the_opa_service_loads_and_compiles_exactly_what_it_serves(tmp_path: Path) -> None:
    """What `opa run --server ... --ignore '*_test.rego' /authz system.promoter:<token.json> /policies`
    loads, loaded into OPA's own Go engine: every .rego file that no --ignore pattern names, the data
    files at their folder's path, and the token opa-token makes at data.system.promoter. It compiles,
    the decision allows the sample app, and OPA's authorization policy (--authentication=token
    --authorization=basic) allows a request, read or write, only with that token."""
    import fnmatch

    from opa_bindings import OpaEngine

    from tests.support.policy import make_input

    command = SERVICES["opa"]["command"]
    assert command[:2] == ["run", "--server"]
    assert "--authentication=token" in command and "--authorization=basic" in command
    ignored = [command[i + 1] for i, arg in enumerate(command) if arg == "--ignore"]
    takes_value = {"--addr", "--ignore"}
    paths = [a for i, a in enumerate(command[2:], 2) if not a.startswith("--") and command[i - 1] not in takes_value]
    mounts = dict(reversed(v.split(":")[:2]) for v in SERVICES["opa"]["volumes"])  # in the container -> host
    subprocess.run(["sh", "-c", opa_token_script(tmp_path / "opa-auth")], check=True)
    token = (tmp_path / "opa-auth" / "token").read_text()
    engine = OpaEngine()
    try:
        loaded: dict[str, str] = {}
        for arg in paths:
            prefix, _, path = arg.rpartition(":")
            mounted = next(m for m in mounts if path == m or path.startswith(m + "/"))
            host = mounts[mounted]
            if host.startswith("./"):  # a folder of this repository
                root = ROOT / host.removeprefix("./") / path.removeprefix(mounted).lstrip("/")
            else:  # the named volume opa-token writes
                assert host == "opa-auth"
                root = tmp_path / "opa-auth" / path.removeprefix(mounted).lstrip("/")
            files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
            for file in files:
                if any(fnmatch.fnmatch(file.name, pattern) for pattern in ignored):
                    continue
                rel = file.relative_to(root) if file != root else Path(file.name)
                if file.suffix == ".rego":
                    engine.add_policy(f"{path}/{rel}", file.read_text())
                    loaded[f"{path}/{rel}"] = file.read_text()
                elif file.suffix in (".json", ".yaml", ".yml"):  # at its folder's path, or at the prefix
                    where = prefix or ".".join(rel.parent.parts)
                    engine.add_data(yaml.safe_load(file.read_text()), where)
        assert "/authz/authz.rego" in loaded and not [p for p in loaded if p.endswith("_test.rego")]
        # the repository's own modules must not add to OPA's authorization policy (OPA merges a package)
        assert [p for p, text in loaded.items() if re.search(r"^package system\b", text, re.M)] == ["/authz/authz.rego"]
        engine.eval_query("true")  # compiles the whole bundle: a rego_recursion_error would raise here
        decision = engine.eval_document("promoter.decision", make_input("staging"))
        assert decision["allow"] is True and decision["deny"] == [], decision

        def allowed(identity: str | None, method: str = "GET", path: str = "v1/policies") -> bool:
            request: dict[str, Any] = {"method": method, "path": path.split("/")}
            if identity is not None:
                request["identity"] = identity
            return engine.eval_document("system.authz.allow", request) is True

        assert allowed(token) and allowed(token, "PUT", "v1/policies/promoter/r1/answer")
        for identity in (None, "", "wrong", token[:-1], token.upper()):
            for method, path in [("GET", "v1/policies"), ("PUT", "v1/policies/x"), ("POST", "v1/data/promoter")]:
                assert not allowed(identity, method, path), (identity, method, path)
    finally:
        engine.close()
