"""What a generated fingerprint set must share with the real one: the similarity of segments a
given number of hops apart in one track, of two random segments, and of a row's nearest neighbours."""
from __future__ import annotations

import numpy as np

LAGS = (1, 2, 5, 10, 20, 50)
NEIGHBOUR_RANKS = (1, 10, 50)
OTHER_TRACK_RANKS = (1, 10)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def lag_cosine(rows: np.ndarray, tracks: np.ndarray, lags: tuple[int, ...] = LAGS) -> dict[int, float]:
    """Mean cosine between two rows of one track ``lag`` rows apart (rows in segment order within
    each track, each track's rows contiguous), for each lag."""
    x, tracks = _unit(rows), np.asarray(tracks)
    out = {}
    for lag in lags:
        same = tracks[lag:] == tracks[:-lag]
        out[lag] = float(np.einsum("ij,ij->i", x[lag:][same], x[:-lag][same]).mean()) if same.any() else float("nan")
    return out


def random_pair_cosine(rows: np.ndarray, pairs: int = 20_000, seed: int = 0) -> float:
    """Mean cosine between two rows drawn at random (with replacement, never a row with itself)."""
    x = _unit(rows)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(x), pairs)
    b = (a + rng.integers(1, len(x), pairs)) % len(x)
    return float(np.einsum("ij,ij->i", x[a], x[b]).mean())


def _probe_search(x: np.ndarray, probes: int, depth: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``probes`` rows of the unit rows ``x`` drawn at random, and their ``depth`` most similar rows
    (exact, over all rows, the probe itself among them): probe indices, similarities, row ids."""
    import faiss

    idx = np.random.default_rng(seed).choice(len(x), size=min(probes, len(x)), replace=False)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, ids = index.search(x[idx], depth)
    return idx, sims, ids


def neighbour_similarity(rows: np.ndarray, probes: int = 500, ranks: tuple[int, ...] = NEIGHBOUR_RANKS,
                         seed: int = 0) -> dict[int, float]:
    """Mean cosine of a probe row's ``rank``-th most similar other row (exact, over all rows), for
    each rank; ``probes`` rows drawn at random probe."""
    idx, sims, ids = _probe_search(_unit(rows), probes, max(ranks) + 1, seed)
    out = {}
    for r in ranks:
        # the probe itself is among its hits (at rank 0, or tied); drop it, keep the r-th other
        col = [s[ids_row != i][r - 1] for s, ids_row, i in zip(sims, ids, idx)]
        out[r] = float(np.mean(col))
    return out


def other_track_similarity(rows: np.ndarray, tracks: np.ndarray, probes: int = 500,
                           ranks: tuple[int, ...] = OTHER_TRACK_RANKS, seed: int = 0) -> dict[int, float]:
    """Mean cosine of a probe row's ``rank``-th most similar row of *another* track (exact, over all
    rows), for each rank: how close the nearest other music comes, which is what takes a query's
    answer from its own track; ``probes`` rows drawn at random probe."""
    x, tracks = _unit(rows), np.asarray(tracks)
    idx, sims, ids = _probe_search(x, probes, min(len(x), 16 * max(ranks)), seed)
    top = np.empty((len(idx), max(ranks)))
    for n, (s, i, probe) in enumerate(zip(sims, ids, idx)):
        other = s[(i >= 0) & (tracks[np.maximum(i, 0)] != tracks[probe])]
        if len(other) < max(ranks):  # a long, steady track fills the search's depth: scan every row
            other = -np.sort(-(x[tracks != tracks[probe]] @ x[probe]))
        top[n] = np.r_[other[:max(ranks)], np.full(max(0, max(ranks) - len(other)), np.nan)]
    return {r: float(np.nanmean(top[:, r - 1])) for r in ranks}


def stat_names() -> list[str]:
    """The keys of :func:`fingerprint_stats`, in its order."""
    return ([f"lag_{k}" for k in LAGS] + ["random_pair"] + [f"neighbour_{k}" for k in NEIGHBOUR_RANKS]
            + [f"other_track_{k}" for k in OTHER_TRACK_RANKS])


def fingerprint_stats(rows: np.ndarray, tracks: np.ndarray, probes: int = 500, seed: int = 0) -> dict[str, float]:
    """All of the above in one flat dict (``lag_1`` ..., ``random_pair``, ``neighbour_1`` ...)."""
    out = {f"lag_{k}": v for k, v in lag_cosine(rows, tracks).items()}
    out["random_pair"] = random_pair_cosine(rows, seed=seed)
    out.update({f"neighbour_{k}": v for k, v in neighbour_similarity(rows, probes, seed=seed).items()})
    out.update({f"other_track_{k}": v for k, v in other_track_similarity(rows, tracks, probes, seed=seed).items()})
    return out
