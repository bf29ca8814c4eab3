"""A run's identity: what changes an answer, hashed, and claimed once per run folder.

Rows of a run folder are only comparable (and only skippable on a rerun) when every setting that can
change an answer is the same. `describe` turns a whole configuration (dataclasses, paths, nested
settings) into plain JSON data, so fields added later are covered without listing them here; the
caller removes the operational ones that cannot change an answer (output folder, batch size, shard,
progress bar). `claim_run` writes `meta.json` with an exclusive create: the first process fixes the
identity; every later one (a rerun, another shard, or a concurrent run) must present the same hash or
is refused before it writes a row.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..textfiles import read_json_object

__all__ = ["RunMetaMismatch", "claim_run", "describe", "file_sha256", "identity_hash", "read_meta"]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"


class RunMetaMismatch(ValueError):
    """A run folder already belongs to a run with a different identity (or cannot be read)."""


def describe(value: Any) -> Any:
    """Plain JSON data for a configuration value: dataclasses field by field (or their own `to_dict()`,
    e.g. a compression config: the method with all its settings), paths resolved."""
    if callable(getattr(value, "to_dict", None)) and not isinstance(value, type):
        return describe(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: describe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, enum.Enum):
        return describe(value.value)
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [describe(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # tensors, arrays
        return value.tolist()
    return repr(value)


def identity_hash(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_meta(bench_dir: Path) -> dict[str, Any] | None:
    """The recorded meta.json of a run folder, None if there is none; a clear error if unreadable."""
    remedy = (
        "the run's configuration is unknown, so its rows cannot be trusted: delete that run folder (or restore "
        "the file) and rerun"
    )
    return read_json_object(Path(bench_dir) / META_FILE, RunMetaMismatch, remedy)


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def claim_run(bench_dir: Path, identity: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Fix the run folder's identity (exclusive create of meta.json) or check it against this run.

    Returns the meta on disk. Raises `RunMetaMismatch` naming the differing settings when the folder
    belongs to another configuration, whether or not it has rows yet.
    """
    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / META_FILE
    digest = identity_hash(identity)
    meta = {**extra, "identity": identity, "identity_sha256": digest}
    handle, name = tempfile.mkstemp(prefix=f".{META_FILE}.", suffix=".tmp", dir=bench_dir)
    tmp = Path(name)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(json.dumps(meta, indent=2, sort_keys=True))
    try:
        os.link(tmp, path)  # atomic and exclusive: the file appears whole, and only once
        logger.info("%s: new run %s", bench_dir, digest[:12])
        return meta
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    old = read_meta(bench_dir)
    assert old is not None
    if old.get("identity_sha256") == digest:
        return old
    recorded = old.get("identity")
    if not isinstance(recorded, dict):
        detail = "it was written without a run identity (an older version)"
    else:
        detail = "; ".join(_differences(recorded, identity)[:8]) or "identity hash differs"
    raise RunMetaMismatch(
        f"{bench_dir} belongs to another configuration ({detail}); pass a different --out or --run-name, "
        "or delete that folder to start over"
    )
