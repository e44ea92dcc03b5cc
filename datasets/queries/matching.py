"""What counts as finding a query: per-segment top-1 and offset-aligned sequence voting (NAFP).

A query of duration D is cut into segments at the DB hop (segment j starts j*hop after the
query start); its segment j should find DB segment ``true_segment + j`` of the right track.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def query_segment_count(duration_s: float, segment_s: float, hop_s: float) -> int:
    """Segments a query of ``duration_s`` is cut into."""
    if duration_s + 1e-9 < segment_s:
        return 0
    return int(np.floor((duration_s - segment_s) / hop_s + 1e-9)) + 1


def vote_sequences(query_index: np.ndarray, seg_index: np.ndarray, ids: np.ndarray, scores: np.ndarray,
                   db_track: np.ndarray, db_segment: np.ndarray,
                   n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offset-aligned voting over each query segment's top-k DB results.

    Every hit (query q, query segment j, DB row r with score s) votes s for the alignment
    (q, track[r], segment[r] - j); each query's prediction is its alignment with the highest
    summed score. Rows are query segments: ``query_index``/``seg_index`` name them; ``ids`` and
    ``scores`` are their [rows, k] search results (-1 ids are padding). Returns the predicted
    DB track code (-1 when nothing was found), start segment and summed score (the answer's
    confidence; -inf when nothing was found) for each of ``n_queries``.
    """
    k = ids.shape[1]
    valid = ids >= 0
    q = np.repeat(query_index, k)[valid.ravel()]
    j = np.repeat(seg_index, k)[valid.ravel()]
    r = ids[valid]
    frame = pd.DataFrame({"q": q, "track": db_track[r], "start": db_segment[r] - j,
                          "score": scores[valid].astype(np.float64)})
    votes = frame.groupby(["q", "track", "start"], sort=True)["score"].sum().reset_index()
    best = votes.sort_values(["q", "score"], ascending=[True, False], kind="stable").drop_duplicates("q")
    pred_track = np.full(n_queries, -1, dtype=np.int64)
    pred_start = np.full(n_queries, -1, dtype=np.int64)
    pred_track[best["q"].to_numpy()] = best["track"].to_numpy()
    pred_start[best["q"].to_numpy()] = best["start"].to_numpy()
    pred_score = np.full(n_queries, -np.inf, dtype=np.float64)
    pred_score[best["q"].to_numpy()] = best["score"].to_numpy()
    return pred_track, pred_start, pred_score


def hit_levels(pred_track: np.ndarray, pred_start: np.ndarray, true_track: np.ndarray,
               true_start: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query booleans: 'exact' (right track and nearest segment), 'near' (+-1 segment), 'track'.

    A query whose song is in no DB (``true_track`` -1) is never a hit, whatever was predicted."""
    track_ok = (pred_track == true_track) & (true_track >= 0)
    offset = np.abs(pred_start - true_start)
    return {"exact": track_ok & (offset == 0), "near": track_ok & (offset <= 1), "track": track_ok}
