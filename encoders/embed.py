"""Embedding DB segments and query segments, with an on-disk cache keyed by content hashes."""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from datasets.cache import atomic_save_npy, atomic_write_parquet, cache_dir, stable_hash
from datasets.corpora.corpus import Corpus
from datasets.progress import tqdm
from datasets.protocol import Protocol
from datasets.queries.matching import query_segment_count
from datasets.queries.queryset import QuerySet, segment_table

from .interface import Encoder, check_rows

SILENCE_PEAK = 1e-6
#: Segments per forward pass. Small batches keep the convolution activations in cache: on the
#: 2-core reference machine 64 embeds about 1.3x more segments a second than 256.
BATCH_SIZE = 64
#: Tracks decoded ahead of the encoder, in a background thread (libsndfile releases the GIL).
PREFETCH_TRACKS = 2


class AudioContentError(ValueError):
    """Audio the encoder cannot embed (NaN, infinite, or silent); the message names its source."""


class NonFiniteFeatures(ValueError):
    """An encoder (or front end) produced NaN or infinite rows; nothing was cached."""


def check_audio(audio: np.ndarray, source: str) -> None:
    """Raise AudioContentError naming ``source`` if ``audio`` holds NaN/inf or is silent."""
    if not np.all(np.isfinite(audio)):
        raise AudioContentError(f"{source}: audio holds NaN or infinite samples")
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise AudioContentError(f"{source}: audio is silent")


def cut_segments(audio: np.ndarray, protocol: Protocol, n_segments: int | None = None) -> np.ndarray:
    """[n, segment_samples] view of ``audio`` cut on the hop grid from sample 0."""
    n = protocol.n_segments(len(audio)) if n_segments is None else n_segments
    seg, hop = protocol.segment_samples, protocol.hop_samples
    if n <= 0:
        return np.zeros((0, seg), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(audio, seg)[::hop][:n]
    return np.ascontiguousarray(windows, dtype=np.float32)


def embed_segments(encoder: Encoder, segments: np.ndarray, batch_size: int = BATCH_SIZE,
                   progress: bool = False, desc: str = "embed") -> np.ndarray:
    """Embeddings [n, d] (float32, L2-normalised) of equal-length waveform segments, ``batch_size``
    segments per call of the encoder's ``embed``; each call's rows are checked for shape."""
    out = np.empty((len(segments), encoder.dim), dtype=np.float32)
    for i in tqdm(range(0, len(segments), batch_size), desc=desc, disable=not progress):
        batch = np.ascontiguousarray(segments[i:i + batch_size], dtype=np.float32)
        out[i:i + len(batch)] = check_rows(encoder, encoder.embed(batch), len(batch))
    return out


def track_label(corpus: Corpus, track_id: str) -> str:
    """How errors name a track: ``track 'ID' of corpus 'NAME'``."""
    return f"track {track_id!r} of corpus {corpus.name!r}"


def load_checked(corpus: Corpus, track_id: str) -> np.ndarray:
    """A track's audio; raises AudioContentError naming the track when it is NaN, infinite or silent."""
    audio = corpus.load(track_id)
    check_audio(audio, track_label(corpus, track_id))
    return audio


def decoded_tracks(corpus: Corpus, track_ids: Sequence[str],
                   prefetch: int = PREFETCH_TRACKS) -> Iterator[tuple[str, np.ndarray]]:
    """(track id, audio) of each track in order, loaded with :func:`load_checked`, up to ``prefetch``
    tracks ahead in a background thread so that decoding overlaps the encoder."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(load_checked, corpus, t) for t in track_ids[:prefetch]]
        for i, track_id in enumerate(track_ids):
            audio = pending.pop(0).result()
            if i + prefetch < len(track_ids):
                pending.append(pool.submit(load_checked, corpus, track_ids[i + prefetch]))
            yield track_id, audio


CacheFolder = tuple[str, ...]
"""Where a per-segment matrix is cached, under ``cache_dir``: e.g. ('embeddings', 'db')."""
Featurize = Callable[[np.ndarray], np.ndarray]
"""Equal-length waveform segments [n, samples] -> one float32 feature row each [n, dim]."""
Job = tuple[str, str, np.ndarray]
"""One track to embed: (source: a key of the corpora mapping, track id, its segment numbers)."""
TrackStream = Callable[[list[Job]], Iterator[np.ndarray]]
"""Embeds track jobs elsewhere (worker processes, Ray workers): yields each job's rows, in job order."""


def _cache_paths(folder: CacheFolder, key: str) -> tuple[Path, Path]:
    root = cache_dir(*folder)
    return root / f"{key}.npy", root / f"{key}.parquet"


def _load_cached(folder: CacheFolder, key: str, rows: int | None = None) -> tuple[np.ndarray, pd.DataFrame] | None:
    """The cached (matrix, index), or None when absent; a damaged entry (truncated, unreadable,
    non-finite, or of the wrong length) is reported, deleted and recomputed by the caller."""
    matrix_path, index_path = _cache_paths(folder, key)
    if not (matrix_path.exists() and index_path.exists()):
        return None
    try:
        matrix, index = np.load(matrix_path, allow_pickle=False), pd.read_parquet(index_path)
        problem = ("holds NaN or infinite values" if not np.all(np.isfinite(matrix)) else
                   f"has {len(matrix)} rows for an index of {len(index)}" if len(matrix) != len(index) else
                   f"has {len(matrix)} rows; {rows} expected" if rows is not None and len(matrix) != rows else None)
    except Exception as exc:  # noqa: BLE001 - any failure to read a cache file means it is damaged
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    if problem is None:
        return matrix, index
    warnings.warn(f"cache file {matrix_path} {problem}; deleting it and its index {index_path.name}, "
                  f"and computing it again", stacklevel=3)
    matrix_path.unlink(missing_ok=True)
    index_path.unlink(missing_ok=True)
    return None


def _check_finite(matrix: np.ndarray, producer: str, describe_row: Callable[[int], str]) -> None:
    """Raise NonFiniteFeatures naming ``producer`` and the first bad row unless every row is finite;
    called before anything is cached, so a broken encoder leaves no NaN rows for later runs."""
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise NonFiniteFeatures(f"{producer} produced NaN or infinite values for {bad.size} of {len(matrix)} "
                                f"segments (first: {describe_row(int(bad[0]))}); nothing was cached. Check the "
                                f"checkpoint (retrain it, or pass another --encoder)")


def _store(folder: CacheFolder, key: str, matrix: np.ndarray, index: pd.DataFrame) -> None:
    matrix_path, index_path = _cache_paths(folder, key)
    atomic_write_parquet(index_path, index)
    atomic_save_npy(matrix_path, matrix)


def db_matrix(featurize: Featurize, dim: int, corpus: Corpus, segments: pd.DataFrame, key: str,
              folder: CacheFolder, desc: str, progress: bool = True, cache: bool = True,
              producer: str = "the feature front end") -> tuple[np.ndarray, bool]:
    """Feature rows of the DB segment table's rows (in its order), one track decoded at a time;
    returns (matrix, cache hit). ``cache=False`` neither reads nor writes ``folder``/``key``.
    Raises NonFiniteFeatures, naming ``producer``, when a row is not finite."""
    hit = _load_cached(folder, key, len(segments)) if cache else None
    if hit is not None:
        return hit[0], True
    out = np.empty((len(segments), dim), dtype=np.float32)
    rows = segments.reset_index(drop=True)
    groups = rows.groupby("track_id", sort=False).indices
    for track_id, audio in tqdm(decoded_tracks(corpus, list(groups)), total=len(groups), desc=desc,
                                disable=not progress):
        idx = groups[track_id]
        seg_no = rows["segment"].to_numpy()[idx]
        out[idx] = featurize(cut_segments(audio, corpus.protocol, int(seg_no.max()) + 1)[seg_no])
    _check_finite(out, producer, lambda i: f"track {rows['track_id'].iat[i]!r} segment {rows['segment'].iat[i]}")
    if cache:
        _store(folder, key, out, rows[["track_id", "segment"]])
    return out, False


def query_matrix(featurize: Featurize, queryset: QuerySet, protocol: Protocol, key: str, folder: CacheFolder,
                 progress: bool = True, cache: bool = True,
                 producer: str = "the feature front end") -> tuple[np.ndarray, pd.DataFrame, bool]:
    """Feature rows of every query segment, its index table (``query_segment_index``), and whether
    the cache was hit. All query segments are cut first, then featurized in one call. Raises
    NonFiniteFeatures, naming ``producer``, when a row is not finite."""
    hit = _load_cached(folder, key) if cache else None
    if hit is not None:
        return hit[0], hit[1], True
    manifest = queryset.manifest()
    index = query_segment_index(manifest, protocol)
    per_query = index.groupby("query").size().reindex(range(len(manifest)), fill_value=0).to_numpy()
    segments = np.empty((len(index), protocol.segment_samples), dtype=np.float32)
    row = 0
    for qi, query_id in enumerate(tqdm(manifest["query_id"], desc="load queries", disable=not progress)):
        audio = queryset.load_query(query_id)
        check_audio(audio, f"query {queryset.root / 'audio' / (query_id + '.flac')}")
        segments[row:row + per_query[qi]] = cut_segments(audio, protocol, per_query[qi])
        row += per_query[qi]
    out = featurize(segments)
    _check_finite(out, producer, lambda i: f"query {index['query_id'].iat[i]!r} segment {index['j'].iat[i]}")
    if cache:
        _store(folder, key, out, index)
    return out, index, False


def db_cache_key(encoder: Encoder, corpus: Corpus, segments: pd.DataFrame) -> str:
    """Cache key of DB embeddings: encoder hash, corpus identity, protocol and the segment table."""
    return stable_hash({"encoder": encoder.sha256, **db_identity(corpus, segments)}, n=32)


def db_identity(corpus: Corpus, segments: pd.DataFrame) -> dict:
    """What fixes the audio of a DB segment table: corpus identity, protocol and the table itself."""
    table = stable_hash(segments[["track_id", "segment"]].to_csv(index=False), n=32)
    return {"corpus": stable_hash(corpus.identity(), n=32), "protocol": corpus.protocol.to_dict(), "segments": table}


def track_jobs(segments: pd.DataFrame, source: str) -> tuple[list[Job], list[np.ndarray]]:
    """The segment table's tracks as jobs of ``source`` (in first-appearance order), and each
    job's row numbers in the table."""
    rows = segments.reset_index(drop=True)
    seg = rows["segment"].to_numpy()
    groups = rows.groupby("track_id", sort=False).indices
    return ([(source, str(t), seg[idx]) for t, idx in groups.items()], list(groups.values()))


def _streamed_db(encoder: Encoder, corpus: Corpus, segments: pd.DataFrame, stream: TrackStream, key: str,
                 progress: bool, cache: bool) -> tuple[np.ndarray, bool]:
    hit = _load_cached(("embeddings", "db"), key, len(segments)) if cache else None
    if hit is not None:
        return hit[0], True
    rows = segments.reset_index(drop=True)
    jobs, where = track_jobs(rows, "corpus")
    out = np.empty((len(rows), encoder.dim), dtype=np.float32)
    with tqdm(total=len(rows), unit="seg", desc="embed DB", disable=not progress) as bar:
        for idx, block in zip(where, stream(jobs)):
            out[idx] = block
            bar.update(len(idx))
    _check_finite(out, encoder_label(encoder),
                  lambda i: f"track {rows['track_id'].iat[i]!r} segment {rows['segment'].iat[i]}")
    if cache:
        _store(("embeddings", "db"), key, out, rows[["track_id", "segment"]])
    return out, False


def embed_db(encoder: Encoder, corpus: Corpus, segments: pd.DataFrame, progress: bool = True,
             batch_size: int = BATCH_SIZE, cache: bool = True,
             stream: TrackStream | None = None) -> tuple[np.ndarray, bool]:
    """Embeddings of the DB segment table's rows (in its order); returns (embeddings, cache hit).

    ``cache=False`` neither reads nor writes the cache (for a model still being trained). With
    ``stream`` (e.g. :func:`encoders.ray_embed.ray_stream` over ``{"corpus": corpus}``) the
    tracks are embedded there instead of in this process; the cache entry is the same.
    """
    if stream is not None:
        return _streamed_db(encoder, corpus, segments, stream, db_cache_key(encoder, corpus, segments), progress,
                            cache)
    return db_matrix(lambda segs: embed_segments(encoder, segs, batch_size), encoder.dim, corpus,
                     segments, db_cache_key(encoder, corpus, segments), ("embeddings", "db"), "embed DB",
                     progress, cache, producer=encoder_label(encoder))


def query_segment_index(manifest: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """One row per query segment: query row number, query_id, segment number j."""
    counts = np.array([query_segment_count(d, protocol.segment_s, protocol.hop_s)
                       for d in manifest["duration_s"]])
    q = np.repeat(np.arange(len(manifest)), counts)
    j = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, int)
    return pd.DataFrame({"query": q.astype(np.int64), "query_id": manifest["query_id"].to_numpy()[q],
                         "j": j.astype(np.int64)})


def embed_queries(encoder: Encoder, queryset: QuerySet, protocol: Protocol, progress: bool = True,
                  batch_size: int = BATCH_SIZE, cache: bool = True) -> tuple[np.ndarray, pd.DataFrame, bool]:
    """Embeddings of every query segment, its index table, and whether the cache was hit."""
    key = stable_hash({"encoder": encoder.sha256, "queryset": queryset.content_hash,
                       "protocol": protocol.to_dict()}, n=32)
    return query_matrix(lambda segs: embed_segments(encoder, segs, batch_size, progress, desc="embed queries"),
                        queryset, protocol, key, ("embeddings", "queries"), progress, cache,
                        producer=encoder_label(encoder))


def encoder_label(encoder: Encoder) -> str:
    """How errors name an encoder: ``encoder`` and its label (for a checkpoint: name, file and hash)."""
    return f"encoder {encoder.label}"


def corpus_segments(corpus: Corpus, split: str | None = None) -> pd.DataFrame:
    """The DB segment table of a corpus split from track lengths (floored, so every row exists)."""
    sr = corpus.protocol.sample_rate
    return segment_table({t.track_id: int(t.duration_s * sr) for t in corpus.tracks(split)}, corpus.protocol)
