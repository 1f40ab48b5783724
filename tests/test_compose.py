"""docker-compose.yml's structure (no Docker engine runs here): the services of the production stack,
images pinned to versions, healthchecks, volumes, the one-shot setup order, and a worker environment
that `promoter worker` reads entirely (each variable is loaded into the worker's settings); and the OPA
service's policies, loaded as its command loads them, compile in OPA's own engine."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    assert "from-the-file" not in repr(s)


def test_the_opa_service_loads_and_compiles_exactly_what_it_serves() -> None:
    """What `opa run --server --ignore '*_test.rego' /policies` loads, loaded into OPA's own Go engine:
    every .rego file that no --ignore pattern names, and the data files at their folder's path; the
    bundle compiles and the decision allows the sample app."""
    import fnmatch

    from opa_bindings import OpaEngine

    from tests.support.policy import make_input

    command = SERVICES["opa"]["command"]
    ignored = [command[i + 1] for i, arg in enumerate(command) if arg == "--ignore"]
    host, mounted = next(v.split(":")[:2] for v in SERVICES["opa"]["volumes"] if v.endswith(":ro"))
    assert command[-1] == mounted
    root = ROOT / host.removeprefix("./")
    engine = OpaEngine()
    try:
        loaded = []
        for path in sorted(root.rglob("*")):
            if not path.is_file() or any(fnmatch.fnmatch(path.name, pattern) for pattern in ignored):
                continue
            rel = path.relative_to(root)
            if path.suffix == ".rego":
                engine.add_policy(str(rel), path.read_text())
                loaded.append(str(rel))
            elif path.suffix in (".json", ".yaml", ".yml"):  # OPA loads every data file at its folder's path
                engine.add_data(yaml.safe_load(path.read_text()), ".".join(rel.parent.parts))
        assert loaded and not [p for p in loaded if p.endswith("_test.rego")]
        engine.eval_query("true")  # compiles the whole bundle: a rego_recursion_error would raise here
        decision = engine.eval_document("promoter.decision", make_input("staging"))
        assert decision["allow"] is True and decision["deny"] == [], decision
    finally:
        engine.close()
