"""A scaling run's distractors: tracks that only ever enter the DB, never queries or training.

:func:`assemble_distractors` gathers them in the order the DB grows by:

1. **Real music** (``debian-distractors``, :mod:`datasets.corpora.debian_distractors`), when
   apt or the extracted packages are there: its tracks minus every track that shares at least
   ``min_overlap_s`` of audio with any track of the searched corpus (train, val and test alike;
   :func:`datasets.dedup.find_overlaps` over the tracks' fingerprints), in an order shuffled by
   the seed.
2. **More real music** (``debian-distractors-extra``) when the first holds fewer segments than
   asked, or every real segment is asked for: the same, also left out where it shares audio with a
   track of the first. A DB that the first one fills never reads it, so it stays what it was.
3. **Synthetic fill** (``synth-distractors``, the synth generator under its own seed) when the
   real music holds fewer segments than asked: enough tracks for the remainder, checked against
   the corpus the same way.

Row keys in a DB table are ``"<source>:<track id>"`` for distractors, so no distractor id can
equal a query's track id; :func:`distractor_segments` gives their segment table.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from datasets.corpora.corpus import Corpus
from datasets.dedup import find_overlaps
from datasets.overlap import track_fingerprints
from datasets.protocol import Protocol

REAL_SOURCE = "debian-distractors"
EXTRA_SOURCE = "debian-distractors-extra"
REAL_SOURCES = (REAL_SOURCE, EXTRA_SOURCE)  # the real music, in the order a DB takes it
FILL_SOURCE = "synth-distractors"
FILL_SEED_OFFSET = 1_000_003  # the fill's synth seed is the run seed plus this, never the corpus's
MIN_OVERLAP_S = 20.0


@dataclass
class DistractorSet:
    """Distractor tracks in DB order (``tracks``: source, track_id, duration_s, segments, real),
    the corpora they come from, and the tracks left out for sharing audio with the corpus."""

    sources: dict[str, Corpus]
    tracks: pd.DataFrame
    dropped: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def real_segments(self) -> int:
        """Segments of real music among the distractors."""
        return int(self.tracks.loc[self.tracks["real"], "segments"].sum())

    @property
    def segments(self) -> int:
        """All distractor segments."""
        return int(self.tracks["segments"].sum())


def _segments(duration_s: float, protocol: Protocol) -> int:
    return protocol.n_segments(int(duration_s * protocol.sample_rate))


def drop_shared_audio(candidates: Corpus, corpus: Corpus, min_overlap_s: float = MIN_OVERLAP_S,
                      progress: bool = False) -> pd.DataFrame:
    """Tracks of ``candidates`` sharing at least ``min_overlap_s`` of audio with a track of
    ``corpus`` (any split): one row each (track_id, shares_with, overlap_s)."""
    fps_c = track_fingerprints(corpus, progress=progress)
    fps_d = track_fingerprints(candidates, progress=progress)
    both = {**{f"c\0{k}": v for k, v in fps_c.items()}, **{f"d\0{k}": v for k, v in fps_d.items()}}
    rows: dict[str, dict] = {}
    for ov in find_overlaps(both, min_overlap_s):
        kinds = {ov.a[0], ov.b[0]}
        if kinds != {"c", "d"}:
            continue
        d, c = (ov.a, ov.b) if ov.a[0] == "d" else (ov.b, ov.a)
        tid = d.split("\0", 1)[1]
        if tid not in rows or ov.overlap_s > rows[tid]["overlap_s"]:
            rows[tid] = {"track_id": tid, "shares_with": c.split("\0", 1)[1], "overlap_s": round(ov.overlap_s, 2)}
    return pd.DataFrame(list(rows.values()), columns=["track_id", "shares_with", "overlap_s"])


def _ordered(source: str, corpus: Corpus, dropped: set[str], real: bool, seed: int,
             protocol: Protocol) -> pd.DataFrame:
    tracks = [t for t in corpus.tracks() if t.track_id not in dropped]
    order = np.random.default_rng(seed).permutation(len(tracks))
    rows = [{"source": source, "track_id": tracks[i].track_id, "duration_s": tracks[i].duration_s,
             "segments": _segments(tracks[i].duration_s, protocol), "real": real} for i in order]
    frame = pd.DataFrame(rows, columns=["source", "track_id", "duration_s", "segments", "real"])
    return frame[frame["segments"] > 0]


def assemble_distractors(corpus: Corpus, need_segments: int, seed: int = 0, real: bool = True,
                         fill: bool = True, real_root: Path | None = None, fetch: bool = True,
                         progress: bool = True, packages: Mapping | None = None, all_real: bool = False,
                         extra_root: Path | None = None, extra_packages: Mapping | None = None) -> DistractorSet:
    """The distractors a scaling run adds to ``corpus``'s DB, at least ``need_segments``
    segments when ``fill`` allows (see the module docstring). ``real=False`` skips the Debian
    packages; ``real_root`` is their folder (default the cache), ``fetch=False`` uses only the
    packages extracted there; ``packages`` ({name: PackageRule}) replaces the recipe's list. The
    second corpus (``extra_root``, default the cache; ``extra_packages``, default the recipe's list
    unless ``packages`` is given, then none) is read when the first falls short of
    ``need_segments``, or always with ``all_real``.
    Raises ValueError when fewer segments than asked can be had."""
    protocol = corpus.protocol
    sources: dict[str, Corpus] = {}
    parts, dropped, notes = [], [], []
    have = 0
    if real:
        from datasets.corpora.debian_distractors import DebianDistractorCorpus, DebianDistractorExtraCorpus
        from datasets.debian_packages import DebianFetchError

        wanted = [(REAL_SOURCE, DebianDistractorCorpus, real_root, packages)]
        if extra_packages is not None or packages is None:
            wanted.append((EXTRA_SOURCE, DebianDistractorExtraCorpus, extra_root, extra_packages))
        for i, (name, kind, root, rules) in enumerate(wanted):
            if i > 0 and not all_real and have >= need_segments:
                break
            try:
                music = kind(protocol, root=root, packages=rules, fetch=fetch, progress=progress)
            except (DebianFetchError, FileNotFoundError) as exc:
                warnings.warn(f"{name}: no real-music distractors ({exc}); "
                              f"{'the synthetic fill stands in' if fill else 'the DB goes without it'}", stacklevel=2)
                notes.append(f"{name} unavailable: {exc}")
                continue
            shared = [drop_shared_audio(music, corpus, progress=progress)]
            for earlier, other in sources.items():  # one song in two packages enters the DB once
                across = drop_shared_audio(music, other, progress=progress)
                shared.append(across.assign(shares_with=f"{earlier}:" + across["shares_with"]))
            shared_ids = set().union(*(set(f["track_id"]) for f in shared))
            dropped += [f.assign(source=name) for f in shared if len(f)]
            sources[name] = music
            parts.append(_ordered(name, music, shared_ids, True, seed, protocol))
            have += int(parts[-1]["segments"].sum())
    if have < need_segments and fill:
        from datasets.corpora.synth import MAX_TRACKS, SynthCorpus

        mean_segments = _segments(75.0, protocol)  # the synth generator's mean duration (30..120 s)
        n = min(MAX_TRACKS, int(math.ceil(1.1 * (need_segments - have) / mean_segments)) + 2)
        synth = SynthCorpus(protocol, seed=seed + FILL_SEED_OFFSET, n_tracks=n, progress=progress)
        shared = drop_shared_audio(synth, corpus, progress=progress)
        dropped.append(shared.assign(source=FILL_SOURCE))
        sources[FILL_SOURCE] = synth
        part = _ordered(FILL_SOURCE, synth, set(shared["track_id"]), False, seed, protocol)
        keep = np.searchsorted(part["segments"].cumsum().to_numpy(), need_segments - have) + 1
        parts.append(part.iloc[:keep])
    tracks = (pd.concat(parts, ignore_index=True) if parts
              else pd.DataFrame(columns=["source", "track_id", "duration_s", "segments", "real"]))
    if int(tracks["segments"].sum()) < need_segments:
        raise ValueError(f"distractors: {int(tracks['segments'].sum())} segments available, {need_segments} asked "
                         f"(real music: {'on' if real else 'off'}, synthetic fill: {'on' if fill else 'off'})")
    frame = (pd.concat(dropped, ignore_index=True) if dropped
             else pd.DataFrame(columns=["track_id", "shares_with", "overlap_s", "source"]))
    return DistractorSet(sources, tracks, frame, notes)


def distractor_segments(distractors: DistractorSet, protocol: Protocol, n_segments: int) -> pd.DataFrame:
    """The first ``n_segments`` distractor segments in DB order: columns source, track_id (the
    source's own id), key (``"<source>:<track id>"``), segment, start_s, real (real music or the
    synthetic fill)."""
    parts, total = [], 0
    for row in distractors.tracks.itertuples(index=False):
        if total >= n_segments:
            break
        k = min(int(row.segments), n_segments - total)
        parts.append(pd.DataFrame({"source": row.source, "track_id": row.track_id,
                                   "key": f"{row.source}:{row.track_id}", "segment": np.arange(k, dtype=np.int64),
                                   "start_s": np.arange(k) * protocol.hop_s, "real": bool(row.real)}))
        total += k
    if total < n_segments:
        raise ValueError(f"distractors hold {total} segments, {n_segments} asked")
    if not parts:
        return pd.DataFrame(columns=["source", "track_id", "key", "segment", "start_s", "real"])
    return pd.concat(parts, ignore_index=True)
