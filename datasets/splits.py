"""Train/val/test assignment by a stable hash of an item id (tracks, noise clips, rooms)."""
from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, Sequence

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def unit_hash(item_id: str, salt: str = "") -> float:
    """Map an id to a number in [0, 1) that never changes across runs, machines or Python versions."""
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate split fractions: keys from SPLITS, non-negative, summing to 1."""
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; allowed: {list(SPLITS)}")
    out = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    if any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {out} must be >= 0 and sum to 1")
    return out


def split_of(item_id: str, fractions: Mapping[str, float] = DEFAULT_FRACTIONS, salt: str = "") -> str:
    """The split an id belongs to: a threshold on its stable hash."""
    fr = check_fractions(fractions)
    u = unit_hash(item_id, salt)
    edge = 0.0
    for name in SPLITS:
        edge += fr[name]
        if u < edge:
            return name
    return SPLITS[-1]


def stratified_splits(items: Iterable[tuple[str, str]], fractions: Sequence[float] = (0.6, 0.0, 0.4),
                      salt: str = "") -> dict[str, str]:
    """Split small banks (noise clips, rooms) so each stratum has members in every non-empty split.

    ``items`` are (item_id, stratum) pairs; within a stratum, items are ordered by their stable
    hash and cut by the fractions (train, val, test), with at least one test item where the
    stratum has two or more.
    """
    by_stratum: dict[str, list[str]] = {}
    for item_id, stratum in items:
        by_stratum.setdefault(stratum, []).append(item_id)
    train_f, val_f, _ = fractions
    out: dict[str, str] = {}
    for ids in by_stratum.values():
        ids = sorted(ids, key=lambda i: unit_hash(i, salt))
        n = len(ids)
        n_train = int(round(train_f * n))
        n_val = int(round(val_f * n))
        if n >= 2:
            n_train = min(max(n_train, 1), n - 1)
            n_val = min(n_val, n - 1 - n_train)
        for k, item_id in enumerate(ids):
            out[item_id] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return out
