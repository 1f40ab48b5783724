"""Python's cyclic garbage collector, tuned for the long-running processes (the worker, the simulated
clusters) that hold a large heap: thousands of apps' parsed manifests, an index of main, every object
of a cluster.

With the defaults (a young collection every 700 new objects, a full one once enough survive), decoding
one list of 5,000 objects (half a million new dicts and strings, none of them in a cycle) ran several
full collections over the whole heap: about a second of the worker's CPU per drift check of 5,000
in-sync apps (0.9–1.0 s with this, 1.6–2.1 s without; docs/benchmarks.md, "A monorepo"). Young
collections run 30 times less often, and what start-up made (imports, the SDK, the loaded state) is
frozen out of every collection; cycles are still collected."""

from __future__ import annotations

import gc

YOUNG = 20_000  # new objects between two young collections (Python's default: 700)


def tune() -> None:
    """Freeze what the process holds now out of every collection, and collect the young less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, 10, 10)
