"""One simulated API server for a test (`sim`, staging, rollouts of 0.05 s), the official client
over HTTP to it (`api`), and promoter's cluster adapter on it (`cluster`, namespace `apps`): the
fixtures tests/cluster's conftest and other modules share. A module may override `sim` (another
rollout delay); `api` and `cluster` then use that one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from promoter.cluster import KubeCluster
from promoter.sim.kube import KubeSim


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(env="staging", rollout_delay_s=0.05) as server:  # port 0: a free one
        yield server


@pytest.fixture
def api(sim: KubeSim) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = sim.url
    configuration.retries = 0
    return client.ApiClient(configuration)


@pytest.fixture
def cluster(api: client.ApiClient) -> KubeCluster:
    return KubeCluster(api, "apps")
