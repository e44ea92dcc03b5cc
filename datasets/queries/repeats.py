"""Is a query's wrong-place match in its own track a repeat of the true audio?

Game and loop-based music repeats itself: a query can match another place of its own track that
holds the same audio, which the exact hit level counts as a miss although no fingerprint could
tell the two apart. This measures how often that happens: for each query whose search found its
track but not within +-1 segment, the best normalised correlation between the clean audio of the
query's span and the audio at the predicted place (over small lags).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import correlate

from datasets.corpora.corpus import Corpus

REPEAT_LEVELS = (0.9, 0.8)


def best_normalised_correlation(template: np.ndarray, region: np.ndarray) -> float:
    """Max over lags of the Pearson correlation between ``template`` and each window of ``region``
    as long as it: 1.0 where ``region`` holds a scaled copy of ``template``. NaN when ``region`` is
    shorter than ``template`` or ``template`` is constant."""
    n = len(template)
    if len(region) < n or n < 2:
        return float("nan")
    t = template.astype(np.float64) - template.mean()
    t_norm = float(np.linalg.norm(t))
    if t_norm == 0.0:
        return float("nan")
    r = region.astype(np.float64)
    numerator = correlate(r, t, mode="valid")  # sum(t) == 0, so the window's mean drops out
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    s1, s2 = c1[n:] - c1[:-n], c2[n:] - c2[:-n]
    window_norm = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(window_norm > 1e-12 * t_norm, numerator / (t_norm * window_norm), 0.0)
    return float(np.clip(corr.max(), -1.0, 1.0))


def wrong_place(outcomes: pd.DataFrame) -> pd.Series:
    """Queries placed in their own track beyond +-1 segment: ``track`` and not ``near``."""
    return outcomes["track"] & ~outcomes["near"]


def repeat_similarity(corpus: Corpus, outcomes: pd.DataFrame, max_lag_s: float = 0.5) -> pd.Series:
    """Per query (``outcomes``' index): for a right-track, wrong-place prediction (``track`` and not
    ``near``), the best normalised correlation between the clean audio of the query's span and the
    predicted place's within +-``max_lag_s``; NaN for every other query.

    ``outcomes`` needs the manifest columns ``track_id``, ``start_sample``, ``n_samples`` and the
    prediction ``pred_segment`` (start segment in the predicted track), as
    ``encoders.validate.query_outcomes`` returns them.
    """
    if max_lag_s < 0:
        raise ValueError(f"max_lag_s={max_lag_s}: allowed >= 0")
    missing = {"track_id", "start_sample", "n_samples", "pred_segment", "track", "near"} - set(outcomes.columns)
    if missing:
        raise ValueError(f"outcomes lack column(s) {', '.join(sorted(missing))}")
    protocol = corpus.protocol
    lag = int(round(max_lag_s * protocol.sample_rate))
    out = pd.Series(np.nan, index=outcomes.index, name="repeat_corr")
    for track_id, group in outcomes[wrong_place(outcomes)].groupby("track_id", sort=False):
        audio = corpus.load(track_id)
        for idx, row in group.iterrows():
            start, n = int(row["start_sample"]), int(row["n_samples"])
            predicted = int(row["pred_segment"]) * protocol.hop_samples
            lo, hi = max(0, predicted - lag), min(len(audio), predicted + n + lag)
            out[idx] = best_normalised_correlation(audio[start:start + n], audio[lo:hi])
    return out


def repeat_table(outcomes: pd.DataFrame, similarity: pd.Series,
                 levels: tuple[float, ...] = REPEAT_LEVELS) -> pd.DataFrame:
    """Per query duration and overall (% of queries): exact, track, right track at the wrong place
    (beyond +-1 segment), and of those the ones whose predicted place repeats the true audio
    (correlation >= each of ``levels``)."""
    frame = outcomes.assign(wrong_place=wrong_place(outcomes), repeat_corr=similarity)
    rows = []
    for key, g in [*frame.groupby("duration_s"), ("all", frame)]:
        row = {"duration s": key if key == "all" else f"{key:g}", "queries": len(g),
               "exact %": 100 * g["exact"].mean(), "track %": 100 * g["track"].mean(),
               "right track, wrong place %": 100 * g["wrong_place"].mean()}
        for level in levels:
            row[f"... a repeat (corr >= {level:g}) %"] = 100 * (g["repeat_corr"] >= level).mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("duration s").round(1)
