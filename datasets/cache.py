"""Cache location and atomic file writes: a crash never leaves a half-written file."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CACHE_ENV = "FLOWHASH_BENCH_CACHE"


def cache_root() -> Path:
    """Root of the on-disk cache: ``$FLOWHASH_BENCH_CACHE``, else ``$XDG_CACHE_HOME/flowhash-bench``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "flowhash-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    """A sub-folder of the cache root, created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(final: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix or ".tmp",
                               dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(final: Path | str, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(final: Path | str, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    atomic_write_bytes(final, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_npy(final: Path | str, array: np.ndarray) -> None:
    """Save one array as ``.npy`` atomically."""
    with atomic_path(final, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def atomic_write_parquet(final: Path | str, frame) -> None:
    """Write a pandas DataFrame as Parquet (no index) atomically."""
    with atomic_path(final) as tmp:
        frame.to_parquet(tmp, index=False)


def stable_hash(obj: object, n: int = 16) -> str:
    """Short sha256 of an object's canonical JSON form: a cache key that survives restarts."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def flat_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ, e.g. ``['config.queries.per_cell']``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += flat_differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [prefix or "(value)"]
