"""The Kubernetes objects of an app folder: plain multi-document YAML (and JSON) files, or a
kustomization rendered by `kubectl kustomize` or `kustomize build`, whichever is on PATH."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from promoter import secrets, yamlsafe
from promoter.errors import BadInput
from promoter.yamlsafe import MAX_FILE_BYTES

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def is_kustomization(files: dict[str, bytes]) -> bool:
    return any(name in files for name in KUSTOMIZATIONS)


def parse_manifests(files: dict[str, bytes], where: str) -> list[dict[str, Any]]:
    """Every document of every manifest file, in path order; a broken one is a one-line error."""
    objects: list[dict[str, Any]] = []
    for rel in sorted(files):
        if not rel.endswith(MANIFEST_SUFFIXES):
            continue
        for doc in _documents(files[rel], rel, where):
            if doc is None:
                continue
            if (
                not isinstance(doc, dict)
                or not isinstance(doc.get("kind"), str)
                or not doc["kind"]
                or not isinstance(doc.get("metadata"), dict)
            ):
                raise BadInput(f"{where}/{rel}: every document must be a Kubernetes object with kind and metadata")
            if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
                objects.extend(i for i in doc["items"] if isinstance(i, dict))
            else:
                objects.append(doc)
    return objects


class _Parsed:
    """Each manifest file's documents by its content, pickled (each caller gets its own copy to change):
    the same file is read again by every stage's policy check, sync and drift check, and parsing YAML
    safely (aliases counted, every node built in Python) costs milliseconds, unpickling microseconds.
    At most `max_bytes` of pickles, the least recently used dropped first; a file that does not parse
    is not kept (its error names where it was found)."""

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[bool, bytes], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[bool, bytes]) -> list[Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
        docs: list[Any] = pickle.loads(found)
        return docs

    def put(self, key: tuple[bool, bytes], docs: list[Any]) -> None:
        try:
            data = pickle.dumps(docs, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, RecursionError, TypeError):  # nothing YAML or JSON builds: then not kept
            return
        with self._lock:
            if key in self._items or len(data) > self.max_bytes // 16:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                self._size -= len(self._items.popitem(last=False)[1])


PARSED = _Parsed()


def _documents(data: bytes, rel: str, where: str) -> list[Any]:
    """The documents of the manifest file `rel` (JSON or YAML by its name)."""
    key = (rel.endswith(".json"), hashlib.sha256(data).digest())
    docs = PARSED.get(key)
    if docs is not None:
        return docs
    text = data.decode("utf-8", errors="replace")
    if key[0]:
        try:
            docs = [json.loads(text)]
        except (ValueError, RecursionError) as e:
            raise BadInput(f"{where}/{rel}: invalid manifest: {str(e) or type(e).__name__}") from None
    else:
        docs = yamlsafe.load_all(text, f"{where}/{rel}", what="manifest")
    PARSED.put(key, docs)  # a pickle of them: the documents returned stay the caller's own
    return docs


def ident(obj: dict[str, Any]) -> str:
    """Kind/namespace/name, as the policies name an object (`-`: no namespace; lib.k8s.ident)."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return f"{obj.get('kind')}/{meta.get('namespace') or '-'}/{meta.get('name')}"


def _scalar(node: Any, key: str) -> Any:
    """The node under `key` of a YAML mapping node (None when there is none)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _located(node: Any) -> list[tuple[str, int]]:
    """(Kind/namespace/name, 1-based line) of the object a document node holds, or of each item of a
    `*List` document."""
    kind, meta = _scalar(node, "kind"), _scalar(node, "metadata")
    if not isinstance(kind, yaml.ScalarNode):
        return []
    items = _scalar(node, "items")
    if kind.value.endswith("List") and isinstance(items, yaml.SequenceNode):
        return [found for item in items.value for found in _located(item)]
    names = {k: _scalar(meta, k) for k in ("namespace", "name")}
    values = {k: v.value if isinstance(v, yaml.ScalarNode) else None for k, v in names.items()}
    obj = {"kind": kind.value, "metadata": values}
    return [(ident(obj), node.start_mark.line + 1)]


def source_lines(files: dict[str, bytes]) -> dict[str, tuple[str, int]]:
    """Kind/namespace/name → (file, line where its document starts), for the plain YAML manifests
    among `files` (path → bytes), so that a finding names the line it is about (`policy check
    --format=line`). A JSON file's objects are at its line 1; a file that is not a manifest is left out."""
    found: dict[str, tuple[str, int]] = {}
    for rel in sorted(files):
        if not rel.endswith(MANIFEST_SUFFIXES):
            continue
        try:
            if rel.endswith(".json"):
                located = [(ident(obj), 1) for obj in parse_manifests({rel: files[rel]}, rel)]
            else:
                nodes = yaml.compose_all(files[rel], Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                located = [found for node in nodes for found in _located(node)]
        except (BadInput, yaml.YAMLError, RecursionError):
            continue  # not a manifest (a kustomization's patch, say): nothing of it is placed
        for name, line in located:
            found.setdefault(name, (rel, line))
    return found


def render_files(files: dict[str, bytes], where: str, materialize: Callable[[Path], Path]) -> list[dict[str, Any]]:
    """Objects of an app folder given as files: parsed as they are, or, for a kustomization, built
    from the folder that `materialize(tmp)` writes (with whatever else of the tree it reaches)."""
    if not is_kustomization(files):
        return parse_manifests(files, where)
    with tempfile.TemporaryDirectory(prefix="promoter-render-") as tmp:
        return kustomize(materialize(Path(tmp)), where)


def kustomize_command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    raise BadInput(
        "this app folder has a kustomization.yaml, but neither kubectl nor kustomize is on PATH; "
        "install one of them on the worker"
    )


def kustomize(folder: Path, where: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    try:
        out = subprocess.run(
            [*kustomize_command(), str(folder)], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise BadInput(f"{where}: kustomize did not finish within {timeout_s:g}s") from None
    if out.returncode != 0:
        first = next((ln.strip() for ln in out.stderr.splitlines() if ln.strip()), "failed")
        raise BadInput(f"{where}: kustomize failed: {secrets.quoted(first)}")  # it may quote a literal
    return parse_manifests({"kustomize-output.yaml": out.stdout.encode()}, where)


def _read(path: Path, max_bytes: int) -> bytes:
    yamlsafe.check_size(str(path), path.stat().st_size, max_bytes)
    return path.read_bytes()


def render_dir(folder: Path, max_bytes: int = MAX_FILE_BYTES) -> list[dict[str, Any]]:
    """Objects of a folder on disk (for `promoter policy check`)."""
    return render_located(folder, max_bytes)[0]


def render_located(
    folder: Path, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
    """The objects of a folder (or one file) on disk, and where each is written: Kind/namespace/name →
    (its file's path, as `folder` names it, and the line its document starts on). A kustomization's
    objects are built: each is placed where the folder writes it under the same Kind/namespace/name,
    else at line 1 of the kustomization file."""
    folder = Path(folder)
    if folder.is_file():
        files = {folder.name: _read(folder, max_bytes)}
        objects = parse_manifests(files, str(folder.parent))
        return objects, {k: (str(folder), line) for k, (_, line) in source_lines(files).items()}
    if not folder.is_dir():
        raise BadInput(f"{folder} does not exist")
    files = {str(p.relative_to(folder)): _read(p, max_bytes) for p in sorted(folder.rglob("*")) if p.is_file()}
    if is_kustomization(files):
        objects = kustomize(folder, str(folder))
        built = (str(folder / next(name for name in KUSTOMIZATIONS if name in files)), 1)
        written = {k: (str(folder / rel), line) for k, (rel, line) in source_lines(files).items()}
        return objects, {ident(o): written.get(ident(o), built) for o in objects}
    objects = parse_manifests(files, str(folder))
    return objects, {k: (str(folder / rel), line) for k, (rel, line) in source_lines(files).items()}
