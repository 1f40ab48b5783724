"""Generated apps for the benchmarks: n objects, half Deployments and half Services, each a renamed
copy of the demo app's in one environment."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from promoter.render import render_dir

ROOT = Path(__file__).resolve().parent.parent


def generated_objects(n: int, env: str) -> list[dict[str, Any]]:
    demo = {o["kind"]: o for o in render_dir(ROOT / "environments" / env / "demo")}
    out = []
    for i in range(n):
        o = copy.deepcopy(demo["Deployment" if i % 2 == 0 else "Service"])
        o["metadata"]["name"] = f"app-{i // 2}"
        out.append(o)
    return out
