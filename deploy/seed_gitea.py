"""docker compose's `seed`: create the GitOps repository on Gitea (once) and push this repository's
environments/ and policies/ to its main branch. The token comes from PROMOTER_FORGE_TOKEN_FILE and
reaches git through its environment only (promoter.gitrepo.auth_env)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from promoter.gitrepo import auth_env
from promoter.stack import seed_origin


def main() -> int:
    base = os.environ["PROMOTER_FORGE_URL"].rstrip("/")
    owner, name = os.environ["PROMOTER_FORGE_REPO"].split("/")
    token = Path(os.environ["PROMOTER_FORGE_TOKEN_FILE"]).read_text().strip()
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/repos/{owner}/{name}", headers=headers))
        print(f"{owner}/{name} exists on {base}; nothing to seed")
        return 0
    except urllib.error.HTTPError as e:
        if e.code != 404:
            print(f"Gitea answered {e.code} for {owner}/{name}", file=sys.stderr)
            return 1
    body = json.dumps({"name": name, "default_branch": "main", "private": True}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{base}/api/v1/user/repos", data=body, headers=headers, method="POST")
    )
    with tempfile.TemporaryDirectory() as tmp:
        origin = Path(tmp) / "origin.git"
        seed_origin(Path("/repo"), origin)
        subprocess.run(
            ["git", "-C", str(origin), "push", f"{base}/{owner}/{name}.git", "main"],
            check=True,
            env={**os.environ, **auth_env(token, "promoter")},
        )
    print(f"seeded {owner}/{name} on {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
