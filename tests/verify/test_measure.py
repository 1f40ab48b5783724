"""Measurements against a real Prometheus (Debian's `prometheus`) scraping a simulated cluster: the
simulator's `/metrics` counts each workload's requests with the error rate its pod template's
`sim.promoter.dev/error-rate` gives; a query's one number is judged by `success`; every measurement
that cannot be taken fails, closed (Prometheus unreachable, a query Prometheus refuses, an empty
vector, several series, NaN, no Prometheus configured); the HTTP check; the `measure` activity."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from activities.verify import VerifyActivities
from promoter import verify
from promoter.models import MeasureInput, VerifyConfig
from promoter.sim.kube import KubeSim
from promoter.sim.metrics import ERROR_RATE
from tests.support.prometheus import RATIO, running_prometheus, wait_for_series


def send(sim: KubeSim, method: str, path: str, body: dict[str, Any], content_type: str) -> None:
    request = urllib.request.Request(
        sim.url + path, data=json.dumps(body).encode(), method=method, headers={"Content-Type": content_type}
    )
    urllib.request.urlopen(request).close()


def deploy(sim: KubeSim, name: str, error_rate: str | None, replicas: int = 2) -> None:
    """A Deployment in namespace `apps` (created when missing), its template annotated with `error_rate`."""
    if ("", "namespaces", "", "apps") not in sim.objects:
        send(
            sim,
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
            "application/json",
        )
    annotations = {ERROR_RATE: error_rate} if error_rate is not None else {}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps", "labels": {"promoter.dev/app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/promoter-dev/demo:1.0.0"}]},
            },
        },
    }
    send(
        sim,
        "PATCH",
        f"/apis/apps/v1/namespaces/apps/deployments/{name}?fieldManager=test",
        body,
        "application/apply-patch+yaml",
    )


def scrape(sim: KubeSim) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(sim.url + "/metrics") as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("http_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            app = labels.split('app="', 1)[1].split('"', 1)[0]
            code = labels.split('code="', 1)[1].split('"', 1)[0]
            out[(app, code)] = float(value)
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeSim]:
    sim = KubeSim(env="staging", rollout_delay_s=0.05).start()
    deploy(sim, "bad", "0.2")
    deploy(sim, "good", None)
    deploy(sim, "odd", "lots")  # not a number: no errors
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def prometheus(cluster: KubeSim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), {"staging": cluster.port}) as url:
        wait_for_series(url, verify.substitute(RATIO, "bad", "staging"))
        wait_for_series(url, verify.substitute(RATIO, "good", "staging"))
        yield url


def test_the_simulator_counts_requests_with_the_annotated_error_rate(cluster: KubeSim) -> None:
    first = scrape(cluster)
    deadline = time.monotonic() + 30
    while True:  # until both rollouts are ready and have served a few requests since the first scrape
        second = scrape(cluster)
        served = {a: sum(second.get((a, c), 0) - first.get((a, c), 0) for c in ("200", "500")) for a in ("bad", "good")}
        if min(served.values()) > 5:
            break
        assert time.monotonic() < deadline, f"the ready replicas served nothing: {second}"
        time.sleep(0.05)
    assert (second[("bad", "500")] - first.get(("bad", "500"), 0)) / served["bad"] == pytest.approx(0.2, abs=0.01)
    assert second[("good", "500")] == 0 and second[("odd", "500")] == 0 and second[("odd", "200")] > 0


def test_a_query_is_judged_by_its_one_number(prometheus: str) -> None:
    bad = verify.query_prometheus(prometheus, verify.substitute(RATIO, "bad", "staging"))
    good = verify.query_prometheus(prometheus, verify.substitute(RATIO, "good", "staging"))
    assert bad == pytest.approx(0.2, abs=0.02) and good == 0.0
    success = verify.parse_success("result < 0.01")
    assert not verify.holds(success, bad) and verify.holds(success, good)
    assert verify.query_prometheus(prometheus, "scalar(vector(3))") == 3.0


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ('sum(http_requests_total{app="nobody"})', "no data (an empty vector)"),
        ("http_requests_total", "series, not one: aggregate them"),
        ("sum(", "Prometheus refused the query: "),
        ("0/0", "returned nan"),
        ("1/0", "returned inf"),
        ('{__name__=~".+"}[1m]', "returned a matrix, not one number"),
    ],
)
def test_what_cannot_be_judged_fails(prometheus: str, query: str, said: str) -> None:
    with pytest.raises(verify.MeasureError) as failed:
        verify.query_prometheus(prometheus, query)
    assert said in str(failed.value) and "\n" not in str(failed.value)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_measure_activity_fails_closed(prometheus: str, cluster: KubeSim) -> None:
    check = VerifyConfig.model_validate(
        {"name": "error-rate", "prometheus": {"query": RATIO, "success": "result < 0.01"}}
    )
    measure = VerifyActivities(prometheus).measure
    bad = measure(MeasureInput(check=check, app="bad", env="staging"))
    assert not bad.passed and bad.value == pytest.approx(0.2, abs=0.02)
    assert bad.error == f"result < 0.01 is false for {bad.value:g}"
    good = measure(MeasureInput(check=check, app="good", env="staging"))
    assert good.passed and good.value == 0.0 and not good.error
    # Prometheus down, or none configured: failed, with the reason, never a pass
    down = VerifyActivities(f"http://127.0.0.1:{closed_port()}").measure(
        MeasureInput(check=check, app="good", env="staging")
    )
    assert not down.passed and "cannot be reached" in down.error and down.value is None
    odd = VerifyActivities("http://127.0.0.1:port").measure(MeasureInput(check=check, app="good", env="staging"))
    assert not odd.passed and "cannot be reached" in odd.error  # a URL that cannot be: failed, not an error
    none = VerifyActivities(None).measure(MeasureInput(check=check, app="good", env="staging"))
    assert not none.passed and "PROMOTER_PROMETHEUS_URL" in none.error
    # the check's own url wins over the worker's
    own = check.model_copy(update={"prometheus": check.prometheus.model_copy(update={"url": prometheus})})  # type: ignore[union-attr]
    assert VerifyActivities(None).measure(MeasureInput(check=own, app="good", env="staging")).passed


def test_the_http_check(cluster: KubeSim) -> None:
    ok = VerifyConfig.model_validate({"name": "smoke", "http": {"url": cluster.url + "/version"}})
    measure = VerifyActivities(None).measure
    passed = measure(MeasureInput(check=ok, app="good", env="staging"))
    assert passed.passed and passed.value == 200.0
    missing = ok.model_copy(update={"http": ok.http.model_copy(update={"url": cluster.url + "/api/v1/{{app}}"})})  # type: ignore[union-attr]
    failed = measure(MeasureInput(check=missing, app="nope", env="staging"))
    assert not failed.passed and failed.error == f"{cluster.url}/api/v1/nope answered 404, expected 200"
    down = ok.model_copy(update={"http": ok.http.model_copy(update={"url": f"http://127.0.0.1:{closed_port()}/"})})  # type: ignore[union-attr]
    assert "cannot be reached" in measure(MeasureInput(check=down, app="good", env="staging")).error
    odd = ok.model_copy(update={"http": ok.http.model_copy(update={"url": "http://127.0.0.1:port/"})})  # type: ignore[union-attr]
    assert "cannot be reached: nonnumeric port" in measure(MeasureInput(check=odd, app="good", env="staging")).error
