"""The DB segment table of one split with the tracks that cannot be decoded left out.

A file whose header reads but whose audio does not decode (corrupt, or NaN / infinite samples) is
left out of every part of a run the same way: the query-set builder skips it, the DB leaves it
out, and ``bench corpus`` counts it, each with a warning naming the file. Finding such files
means decoding every track once, so the result is cached per corpus identity, split and protocol.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from datasets.audio_io import AudioReadError, warn_skip
from datasets.cache import atomic_write_json, cache_dir, stable_hash
from datasets.corpora.corpus import Corpus
from datasets.progress import tqdm

from .queryset import segment_table

FORMAT = 1


@dataclass(frozen=True)
class SplitSegments:
    """A split's DB segments (``track_id``, ``segment``, ``start_s``) and the tracks left out."""

    segments: pd.DataFrame
    unreadable: list[dict]  # {"track_id", "reason"} per track that did not decode


def readable_tracks(corpus: Corpus, split: str, progress: bool = True) -> tuple[list[str], list[dict]]:
    """Decode every track of ``split`` once: (track ids that decode, [{track_id, reason}] of those
    that do not, each warned about). Cached: a later call decodes nothing."""
    key = stable_hash({"format": FORMAT, "corpus": corpus.identity(), "split": split,
                       "protocol": corpus.protocol.to_dict()}, n=24)
    path = cache_dir("readable-tracks", corpus.name) / f"{split}-{key}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            for item in data["unreadable"]:
                warn_skip(item["track_id"], item["reason"])
            return list(data["readable"]), list(data["unreadable"])
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # damaged: decode again
    readable, unreadable = [], []
    for track in tqdm(corpus.tracks(split), desc=f"check {split} audio", unit="track", disable=not progress):
        try:
            corpus.load(track.track_id)
        except AudioReadError as exc:
            warn_skip(track.track_id, str(exc))
            unreadable.append({"track_id": track.track_id, "reason": str(exc)})
            continue
        readable.append(track.track_id)
    atomic_write_json(path, {"readable": readable, "unreadable": unreadable})
    return readable, unreadable


def split_segments(corpus: Corpus, split: str, progress: bool = True) -> SplitSegments:
    """The DB segment table of ``split`` from the tracks' lengths, undecodable tracks left out."""
    readable, unreadable = readable_tracks(corpus, split, progress)
    sr = corpus.protocol.sample_rate
    keep = set(readable)
    lengths = {t.track_id: int(t.duration_s * sr) for t in corpus.tracks(split) if t.track_id in keep}
    return SplitSegments(segment_table(lengths, corpus.protocol) if lengths else _empty(), unreadable)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"track_id": pd.Series([], dtype=object), "segment": pd.Series([], dtype="int64"),
                         "start_s": pd.Series([], dtype=float)})

