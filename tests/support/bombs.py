"""A YAML alias bomb (\"billion laughs\"), for the tests of bounded parsing."""

from __future__ import annotations


def bomb(levels: int = 12) -> str:
    """The classic: each level nine references to the one before (9^12 strings once written out)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n"
        + "\n".join("  " + line for line in lines)
        + "\n"
    )
