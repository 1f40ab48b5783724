"""YAML loaded within a budget: every YAML file promoter reads (manifests, environment.yaml, policy
data) goes through here.

A YAML alias refers to an anchored node; PyYAML shares the constructed object, but everything after
it (JSON for the policy engine, a deep copy, a server-side apply) writes each reference out in full,
so a 1.5 KB file of nested anchors ("billion laughs") becomes gigabytes. Each document is composed
first, its size with every alias expanded is counted over the node graph (each node once, so the
count itself is cheap), and only a document within the budget is constructed. A recursive alias and
nesting too deep for the parser are refused too. Every refusal is one line naming the file.
"""

from __future__ import annotations

from typing import Any

import yaml

import promoter
from promoter.errors import BadInput

MAX_EXPANDED_NODES = 1_000_000  # scalars, sequences and mappings, with every alias written out
MAX_FILE_BYTES = promoter.MAX_FILE_BYTES  # defined at the package's root, so settings need not import yaml

try:  # libyaml when PyYAML was built with it: the same rules, faster
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the wheel
    _Loader = yaml.SafeLoader


def check_size(where: str, size: int, limit: int = MAX_FILE_BYTES) -> None:
    """A file of an app folder over the limit is refused, naming the limit, before it is read."""
    if size > limit:
        raise BadInput(
            f"{where} is {size:,} bytes, over the limit of {limit:,} bytes per file "
            "(PROMOTER_MAX_FILE_SIZE); split it or raise the limit"
        )


class _TooBig(Exception):
    pass


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """Nodes in the document once every alias is written out; raises `_TooBig` past the budget and
    `ValueError` for a node that contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > budget:
                raise _TooBig()
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ValueError("a recursive alias (a node that contains itself)")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ValueError("a recursive alias (a node that contains itself)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _invalid(text: str | bytes, where: str, what: str, e: BaseException) -> str:
    """One line for a syntax error. libyaml finds it; PyYAML's own parser, run again on the broken
    text only, names the line a person would point at (libyaml often names the next one)."""
    if _Loader is not yaml.SafeLoader:
        try:
            for _ in yaml.compose_all(text, Loader=yaml.SafeLoader):
                pass
        except yaml.YAMLError as precise:
            e = precise
        except RecursionError:
            pass
    mark = getattr(e, "problem_mark", None)
    line = f" line {mark.line + 1}:" if mark is not None else ""
    problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    return f"{where}:{line} invalid {what}: {problem}"


def load_all(text: str | bytes, where: str, max_nodes: int = MAX_EXPANDED_NODES, what: str = "YAML") -> list[Any]:
    """Every document of `text`; raises `BadInput` (one line, naming `where`) on anything wrong."""
    where = where.replace("\n", "\\n")  # a file name with a newline still makes a one-line error
    loader = _Loader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                _expanded_size(node, max_nodes)
            except _TooBig:
                raise BadInput(
                    f"{where}: its YAML aliases expand to more than {max_nodes:,} nodes (an alias bomb); "
                    "write the values out instead of nesting anchors"
                ) from None
            except ValueError as e:
                raise BadInput(f"{where}: {e}; YAML that refers to itself cannot be a manifest") from None
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as e:
        raise BadInput(_invalid(text, where, what, e)) from None
    except RecursionError:
        raise BadInput(f"{where}: YAML nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()
    return docs


def load(text: str | bytes, where: str, max_nodes: int = MAX_EXPANDED_NODES) -> Any:
    """The one document of `text` (None when it is empty)."""
    docs = load_all(text, where, max_nodes)
    if len(docs) > 1:
        raise BadInput(f"{where}: expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None
