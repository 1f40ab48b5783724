"""`python -m promoter.sim --kubeconfig PATH --env dev --env staging ...`: one simulated API server
per environment on free loopback ports, and a kubeconfig with a context per environment; runs until
SIGTERM or SIGINT. `promoter up` starts it with `--state-dir`, so the clusters keep their objects, and
with `--port ENV=PORT` for each port the last `up` recorded (a taken one falls back to a free port:
the kubeconfig names the port each server took)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

import yaml

from promoter import heap
from promoter.sim.kube import KubeSim, kubeconfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m promoter.sim")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--env", action="append", required=True)
    parser.add_argument("--rollout-delay", type=float, default=0.2)
    parser.add_argument("--state-dir", help="keep each cluster's objects in STATE_DIR/<env>.json across restarts")
    parser.add_argument("--port", action="append", default=[], help="ENV=PORT: that cluster's port, when free")
    args = parser.parse_args()
    state = Path(args.state_dir) if args.state_dir else None
    ports = {env: int(port) for env, _, port in (p.partition("=") for p in args.port) if port.isdigit()}
    sims = [_sim(env, args.rollout_delay, state, ports.get(env, 0)).start() for env in args.env]
    heap.tune()  # the loaded state is never collected again (promoter.heap)
    path = Path(args.kubeconfig)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig({s.env: s.url for s in sims})))
    os.replace(tmp, path)  # appears whole, once every server listens
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in sims:
        s.stop()


def _sim(env: str, rollout_delay_s: float, state: Path | None, port: int) -> KubeSim:
    """Cluster `env`'s server on `port` when it is free, else on a free one."""
    state_file = state / f"{env}.json" if state else None
    try:
        return KubeSim(env=env, rollout_delay_s=rollout_delay_s, state_file=state_file, port=port)
    except OSError:  # taken since: the kubeconfig names the port it took instead
        return KubeSim(env=env, rollout_delay_s=rollout_delay_s, state_file=state_file)


if __name__ == "__main__":
    main()
