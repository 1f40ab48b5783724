"""The simulated API server and its client some modules here use (tests/support/simulator.py)."""

from tests.support.simulator import api, sim

__all__ = ["api", "sim"]
