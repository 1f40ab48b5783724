"""docker-compose.yml's structure (no Docker engine runs here): the services of the first version,
images pinned to versions, healthchecks, and a worker environment made only of variables that
`promoter worker` reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_structure() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgresql", "temporal", "temporal-ui", "opa", "k3s", "worker"} <= set(services)
    for name, svc in services.items():
        if "image" in svc:
            assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", svc["image"]), f"{name}: pin the image to a version"
        else:
            assert svc.get("build") == ".", f"{name}: built from this repository"
    for name in ("postgresql", "temporal", "opa", "k3s", "worker"):
        assert "healthcheck" in services[name], f"{name} needs a healthcheck"
    settings_source = (ROOT / "promoter" / "settings.py").read_text()
    read = set(re.findall(r'"(PROMOTER_[A-Z_]+)"', settings_source)) | {"KUBECONFIG"}  # the kubernetes client
    assert set(services["worker"]["environment"]) <= read
    assert services["worker"]["environment"]["PROMOTER_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert (ROOT / "Dockerfile").is_file()
    opa = services["opa"]
    assert "./policies:/policies:ro" in opa["volumes"] and "*_test.rego" in opa["command"]
    assert services["worker"]["environment"]["PROMOTER_OPA_URL"] == "http://opa:8181"
    assert services["worker"]["environment"]["KUBECONFIG"] == "/kube/contexts.yaml"
