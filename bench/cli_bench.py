"""How fast the everyday commands start and answer: `promoter status`, `approve` and `list`.

Starts the embedded stack in a temporary state directory, runs one promotion of `demo` so that there
is something to list and show, then times each command in fresh processes (as a person runs them)
and prints the median and the fastest of `--runs` runs: first over gRPC (the SDK's client, with
`PROMOTER_TEMPORAL_HTTP_URL` empty), then over Temporal's HTTP API (the stack's default). The last
line is `cli over http: status <s> s, approve <s> s, list <s> s` (medians).

    .venv/bin/python bench/cli_bench.py [--runs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.promotion_bench import auto_approving_copy  # noqa: E402
from promoter import api  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.stack import Stack  # noqa: E402

COMMANDS = {
    "status": ["status", "promote-demo"],
    "approve": ["approve", "promote-demo", "--env", "prod", "--as", "alice"],  # ended: refused at once
    "list": ["list"],
}


async def one_promotion(stack: Stack) -> None:
    settings = Settings.load(str(stack.dir))
    client = await connect(settings)
    handle = await api.start(
        client, settings.task_queue, await api.resolve(client, settings.task_queue, "demo"), "bench"
    )
    await handle.result()


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="promoter-cli-bench-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        stack.up(auto_approving_copy(tmp))
        try:
            asyncio.run(one_promotion(stack))
            env = {**os.environ, "PROMOTER_STATE_DIR": str(stack.dir)}
            for transport, extra in (("grpc", {"PROMOTER_TEMPORAL_HTTP_URL": ""}), ("http", {})):
                figures = {}
                for name, args in COMMANDS.items():
                    times = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        argv = [sys.executable, "-m", "promoter", *args]
                        done = subprocess.run(argv, env={**env, **extra}, capture_output=True)
                        times.append(time.perf_counter() - t0)
                        assert done.returncode in (0, 2), done.stderr
                    figures[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3)}
                    print(f"{transport} {name:8} median {statistics.median(times):.3f} s, fastest {min(times):.3f} s")
                print(json.dumps({transport: figures}))
                print(f"cli over {transport}: " + ", ".join(f"{n} {f['median_s']:.3f} s" for n, f in figures.items()))
        finally:
            stack.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    main(parser.parse_args().runs)
