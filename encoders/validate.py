"""Exact-search top-1 hit rate of an encoder on a query set (training's validation signal)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.corpora.corpus import Corpus
from datasets.queries.matching import hit_levels, vote_sequences
from datasets.queries.queryset import QuerySet

from .embed import embed_db, embed_queries
from .interface import Encoder

TOP_K = 10


def exact_search(db: np.ndarray, queries: np.ndarray, k: int = TOP_K,
                 chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k: (ids [n, k], scores [n, k]), best first."""
    k = min(k, len(db))
    ids = np.empty((len(queries), k), np.int64)
    scores = np.empty((len(queries), k), np.float32)
    for i in range(0, len(queries), chunk):
        sim = queries[i:i + chunk] @ db.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, top, 1), axis=1, kind="stable")
        ids[i:i + chunk] = np.take_along_axis(top, order, 1)
        scores[i:i + chunk] = np.take_along_axis(sim, ids[i:i + chunk], 1)
    return ids, scores


def query_outcomes(encoder: Encoder, corpus: Corpus, queryset: QuerySet, progress: bool = True,
                   cache: bool = True) -> pd.DataFrame:
    """Per query: the manifest row, exact/near/track hit flags under exact search, and the
    predicted start segment ``pred_segment`` (in the predicted track; -1 when nothing was found)."""
    segments = queryset.segments()
    db, _ = embed_db(encoder, corpus, segments, progress, cache=cache)
    qemb, index, _ = embed_queries(encoder, queryset, corpus.protocol, progress, cache=cache)
    ids, scores = exact_search(db, qemb)
    codes, tracks = pd.factorize(segments["track_id"])
    manifest = queryset.manifest()
    pred_track, pred_start, _ = vote_sequences(index["query"].to_numpy(), index["j"].to_numpy(), ids, scores,
                                               codes, segments["segment"].to_numpy(), len(manifest))
    true_track = pd.Index(tracks).get_indexer(manifest["track_id"])
    hits = hit_levels(pred_track, pred_start, true_track, manifest["true_segment"].to_numpy())
    return manifest.assign(**hits, pred_segment=pred_start)


def exact_hit_rates(encoder: Encoder, corpus: Corpus, queryset: QuerySet, progress: bool = True,
                    cache: bool = True) -> dict[str, float]:
    """Top-1 exact hit rate per query duration, keyed like '2s'."""
    out = query_outcomes(encoder, corpus, queryset, progress, cache)
    return {f"{d:g}s": float(g["exact"].mean()) for d, g in out.groupby("duration_s")}
