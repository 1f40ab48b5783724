"""The simulated API server, its client and the cluster adapter every module here uses
(tests/support/simulator.py)."""

from tests.support.simulator import api, cluster, sim

__all__ = ["api", "cluster", "sim"]
