"""A real Prometheus (Debian's `prometheus` package) for the tests: on a free loopback port, scraping
simulated clusters' `/metrics` every second, with the configuration `promoter up` writes
(promoter.stack.prometheus_config). `running_prometheus` returns once every target is up (a deadline,
never a fixed sleep) and stops the process after the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from promoter.sim.metrics import ERROR_RATE
from promoter.stack import free_port, prometheus_argv, prometheus_config
from tests.support.gitops import Origin

DEADLINE_S = 60.0
# an app's share of 5xx answers in an environment, over the simulators' request counters
RATIO = (
    'sum(rate(http_requests_total{app="{{app}}",env="{{env}}",code=~"5.."}[5s]))'
    ' / sum(rate(http_requests_total{app="{{app}}",env="{{env}}"}[5s]))'
)
# a `verify` check on it: the rate's window fills with two scrapes (1 s apart) before the first measurement
ERROR_RATE_CHECK: dict[str, object] = {
    "name": "error-rate",
    "prometheus": {"query": RATIO, "success": "result < 0.01"},
    "initial_delay": "3s",
    "interval": "1s",
    "count": 2,
}
# the same on `promoter up`'s Prometheus, which scrapes every STACK_SCRAPE_S (10 s): a 25 s window, two
# scrapes at least, filled by the new version's before the first measurement
STACK_ERROR_RATE_CHECK: dict[str, object] = {
    **ERROR_RATE_CHECK,
    "prometheus": {"query": RATIO.replace("[5s]", "[25s]"), "success": "result < 0.01"},
    "initial_delay": "26s",
    "interval": "10s",
}


def with_error_rate(origin: Origin, rate: str, tag: str) -> str:
    """A commit of demo at `tag` whose pods answer `rate` of their requests with a 500."""
    path = "environments/dev/demo/deployment.yaml"
    origin.repo.git.pull("--quiet", "--rebase", "origin", "main")
    doc = yaml.safe_load((origin.work / path).read_text())
    doc["spec"]["template"]["metadata"]["annotations"] = {ERROR_RATE: rate}
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/demo:{tag}"
    return origin.commit({path: yaml.safe_dump(doc, sort_keys=False)}, f"demo {tag}, {rate} errors")


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: run scripts/setup-system (apt-get install prometheus)")
    return found


def targets_up(url: str) -> bool:
    """Whether Prometheus answers and has scraped every target of its configuration successfully."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=2) as answer:
            active = json.loads(answer.read())["data"]["activeTargets"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(active) and all(t.get("health") == "up" for t in active)


@contextmanager
def running_prometheus(workdir: Path, targets: dict[str, int]) -> Iterator[str]:
    """Prometheus scraping 127.0.0.1:`port` of each target (a cluster's name → its port); its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    argv = prometheus_argv(prometheus_binary(), config, workdir / "data", port)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not targets_up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                said = (workdir / "prometheus.log").read_text()[-2000:]
                pytest.fail(f"Prometheus did not come up with its targets scraped: {said}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for_series(url: str, query: str, deadline_s: float = DEADLINE_S) -> None:
    """Wait until `query` returns at least one series (e.g. a workload's counters scraped twice)."""
    deadline = time.monotonic() + deadline_s
    while True:
        with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})) as answer:
            if json.loads(answer.read())["data"]["result"]:
                return
        assert time.monotonic() < deadline, f"Prometheus never returned a series for {query}"
        time.sleep(0.1)
