"""Landmark fingerprinting end to end: Ellis's audfprint (the ``audfprint2`` package), in the line
of Wang's Shazam paper, over the raw audio of the DB tracks and of each query.

It is the one method here that reads audio (``input_kind = "audio"``, ``methods.base.AudioDB``):
``build`` analyses every DB track whole into landmarks (pairs of spectral peaks hashed as
(f1, df, dt) with their time) and stores them in audfprint's hash table; ``search`` rejoins each
query's segment rows into the query's audio, analyses it (that analysis is part of the timed
search, so its latency is end to end), looks its landmarks up and votes over (track, time
offset) as audfprint's matcher does. The best offsets become DB rows: query row ``j`` of a
match at (track, start) gets the DB row of segment ``start + j`` of that track, scored by the
match's count of time-aligned landmarks, so the suite's offset-aligned voting recovers exactly
audfprint's ranking and scores it with the same exact / near / track levels.

The analysis uses audfprint's 512-point FFT and 256-sample hop at ``analysis_sr``: by default the
run's 8 kHz audio as it is (64 ms windows, 32 ms frames; its 256 bins still fill audfprint's 8-bit
peak field), or resampled (scipy's polyphase resampler, inside the timed search for a query) to
audfprint's own 11,025 Hz (46 ms windows, 23 ms frames). On the default data the native rate found
more queries, at less cost (docs/fidelity.md).

``candidates`` for a query: the distinct DB segments that hold at least one landmark the query's
landmarks retrieved from the table (the entries its voting reads), spread over the query's rows.
"""
from __future__ import annotations

import logging
import math
import random
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from methods.base import (
    AUDIO_QUERY_HEADER,
    AudioDB,
    Method,
    SearchResult,
    check_float_range,
    check_int_range,
    pad_result,
)
from methods.registry import register

N_FFT = 512
N_HOP = 256
AUDFPRINT_SR = 11_025  # the rate audfprint resamples to and its masking decay and hash fields assume
LANDMARK_BITS = 20  # audfprint's landmark hash: 8 bits of f1, 6 of df, 6 of dt
TABLE_BITS = 32  # audfprint's table holds (track id, time) in one uint32


def audfprint_modules() -> tuple[Any, Any, Any]:
    """audfprint2's analyzer module, HashTable and Matcher, imported on first use. Its modules call
    ``logging.basicConfig(level=INFO)`` when imported, which would turn on every library's INFO
    messages in the whole process; the root logger is put back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from audfprint2.core import analyzer
        from audfprint2.core.hash_table import HashTable
        from audfprint2.core.matcher import Matcher
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return analyzer, HashTable, Matcher


def landmark_hashes(analyzer: Any, audio: np.ndarray, sample_rate: int, shifts: int = 1) -> np.ndarray:
    """audfprint's (time frame, hash) pairs [n, 2] int32 of a waveform, unique and sorted, as its
    ``wavfile2hashes`` makes them from a file; ``shifts`` > 1 also analyses the audio started
    1/shifts, 2/shifts, ... of a hop later (more landmarks, less sensitivity to frame alignment)."""
    parts = []
    for shift in range(max(1, shifts)):
        start = int(shift / max(1, shifts) * analyzer.n_hop)
        if len(audio) - start < analyzer.n_fft:
            continue
        peaks = analyzer.find_peaks(audio[start:], sample_rate)
        parts.append(audfprint_modules()[0].landmarks2hashes(analyzer.peaks2landmarks(peaks)))
    if not parts:
        return np.zeros((0, 2), dtype=np.int32)
    return np.unique(np.concatenate(parts), axis=0).astype(np.int32)


@register
class AudFprint(Method):
    """audfprint's landmark hashes and offset voting (build: ``density`` landmarks per second,
    ``fanout`` pairs per peak, ``hashbits`` of the hash kept, ``depth`` entries per bucket; query:
    ``shifts`` of the query analysis, ``min_count`` aligned landmarks for a match)."""

    name = "audfprint"
    input_kind = "audio"
    approximate_scores = True  # scores are counts of aligned landmarks, not inner products
    build_defaults = {"density": 20.0, "fanout": 3, "hashbits": 20, "depth": 100, "analysis_sr": 8_000}
    query_defaults = {"shifts": 1, "min_count": 5}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_float_range("density", params["density"], 0.0, 1000.0, lo_open=True)
        check_int_range("fanout", params["fanout"], 1, 100)
        check_int_range("hashbits", params["hashbits"], 8, LANDMARK_BITS)
        check_int_range("depth", params["depth"], 1, 10_000)
        check_int_range("analysis_sr", params["analysis_sr"], 4_000, 48_000)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("shifts", params["shifts"], 1, 64)
        check_int_range("min_count", params["min_count"], 1)

    def _analyzer(self) -> Any:
        analyzer = audfprint_modules()[0].Analyzer(density=float(self.params["density"]))
        analyzer.n_fft, analyzer.n_hop = N_FFT, N_HOP
        analyzer.maxpairsperpeak = int(self.params["fanout"])
        analyzer.target_sr = self.analysis_sr
        return analyzer

    def _resampled(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` (at the run's rate) at the analysis rate, float64, as audfprint reads files."""
        audio = np.asarray(audio, dtype=np.float64)
        if self.analysis_sr == self.sample_rate:
            return audio
        g = math.gcd(self.analysis_sr, self.sample_rate)
        return resample_poly(audio, self.analysis_sr // g, self.sample_rate // g)

    def _build(self, db: AudioDB) -> None:
        self.sample_rate, self.hop_s = db.sample_rate, db.hop_s
        self.analysis_sr = int(self.params["analysis_sr"])
        self.segment_samples, self.hop_samples = db.segment_samples, db.hop_samples
        self.segment_rows = [np.asarray(r, dtype=np.int64) for r in db.segment_rows]
        frames = max([int(len(t) * self.analysis_sr / self.sample_rate) // N_HOP + 2 for t in db.tracks] + [2])
        timebits = max(1, math.ceil(math.log2(frames)))
        if (len(db.tracks) + 1) >= 2 ** (TABLE_BITS - timebits):
            raise ValueError(f"{self.name}: {len(db.tracks)} tracks of up to {frames} frames do not fit "
                             f"audfprint's 32-bit (track, time) entries")
        _, HashTable, Matcher = audfprint_modules()
        self.table = HashTable(hashbits=int(self.params["hashbits"]), depth=int(self.params["depth"]),
                               maxtime=2 ** timebits)
        analyzer = self._analyzer()
        self.db_hashes = 0
        state = random.getstate()  # a full bucket keeps a random sample of its entries: seeded here
        random.seed(self.seed)
        try:
            for t, audio in enumerate(db.tracks):
                hashes = landmark_hashes(analyzer, self._resampled(audio), self.analysis_sr)
                self.table.store(str(t), hashes.tolist())  # named: the table numbers names 0, 1, ...
                self.db_hashes += len(hashes)
        finally:
            random.setstate(state)
        self.db_seconds = sum(len(t) for t in db.tracks) / self.sample_rate
        self.matcher = Matcher()

    def _queries(self, q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(row numbers in j order, rejoined audio) of each query in the batch, in first-row order."""
        number, j = q[:, 0], q[:, 1]
        if not (np.all(number == np.round(number)) and np.all(j == np.round(j)) and np.all(j >= 0)):
            raise ValueError(f"{self.name}: query rows must start with {AUDIO_QUERY_HEADER} "
                             f"(integers >= 0), then the segment's samples")
        out = []
        _, first, query = np.unique(number, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))[query]  # each row's query, numbered in first-row order
        order = np.lexsort((j, rank))
        for rows in np.split(order, np.flatnonzero(np.diff(rank[order])) + 1):
            if not np.array_equal(j[rows], np.arange(len(rows))):
                raise ValueError(f"{self.name}: query {int(number[rows[0]])}'s rows have segment indices "
                                 f"{j[rows].astype(int).tolist()}; expected 0..{len(rows) - 1}, each once")
            samples = q[rows, len(AUDIO_QUERY_HEADER):]
            audio = np.concatenate([samples[0], samples[1:, self.segment_samples - self.hop_samples:].ravel()])
            out.append((rows, audio))
        return out

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        analyzer = self._analyzer()
        self.matcher.threshcount = int(self.query_params["min_count"])
        shifts = int(self.query_params["shifts"])
        ids = np.full((len(q), k), -1, dtype=np.int64)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        candidates = np.zeros(len(q), dtype=np.int64)
        for rows, audio in self._queries(q):
            hashes = landmark_hashes(analyzer, self._resampled(audio), self.analysis_sr, shifts)
            self.clock.lap("hash")
            hits = self.table.get_hits(hashes) if len(hashes) else np.zeros((0, 4), np.int32)
            self.clock.lap("gather")
            matches = self._matches(hits)
            self.clock.lap("vote")
            touched = self._touched_segments(hits)
            self._fill(rows, matches, k, ids, scores)
            found = (ids[rows] >= 0).sum(axis=1)
            share = touched // len(rows) + (np.arange(len(rows)) < touched % len(rows))
            candidates[rows] = np.minimum(np.maximum(share, found), self.n)
        return pad_result(ids, scores, candidates)

    def _matches(self, hits: np.ndarray) -> np.ndarray:
        """audfprint's matcher over the retrieved entries: rows [track, aligned count, offset frames],
        best first (its ``match_hashes`` without a second table lookup)."""
        if not len(hits):
            return np.zeros((0, 3), dtype=np.int64)
        best, raw = self.matcher._best_count_ids(hits, self.table)
        results = self.matcher._approx_match_counts(hits, best, raw)
        results = results[np.argsort(-results[:, 1], kind="stable")]
        return results[:, :3].astype(np.int64)

    def _touched_segments(self, hits: np.ndarray) -> int:
        """Distinct DB segments (rows) holding an entry the query's landmarks retrieved."""
        if not len(hits):
            return 0
        track = hits[:, 0].astype(np.int64)
        frame = hits[:, 1].astype(np.int64) + hits[:, 3]
        segment = np.floor(frame * N_HOP / self.analysis_sr / self.hop_s).astype(np.int64)
        rows = set()
        for t in np.unique(track):
            seg = segment[track == t]
            table = self.segment_rows[t]
            rows.update(table[np.clip(seg, 0, len(table) - 1)].tolist())
        return len(rows)

    def _fill(self, rows: np.ndarray, matches: np.ndarray, k: int, ids: np.ndarray, scores: np.ndarray) -> None:
        """Row j of a query gets, for each of its best matches (track, count, offset), the DB row of
        segment start + j of that track, where it exists; each DB row once per query row."""
        filled = np.zeros(len(rows), dtype=np.int64)
        seen: list[set[int]] = [set() for _ in rows]
        for track, count, offset in matches:
            if filled.min() >= k:
                break
            start = round(offset * N_HOP / self.analysis_sr / self.hop_s)
            table = self.segment_rows[int(track)]
            for j, row in enumerate(rows):
                s = start + j
                if filled[j] >= k or not 0 <= s < len(table):
                    continue
                db_row = int(table[s])
                if db_row in seen[j]:
                    continue
                seen[j].add(db_row)
                ids[row, filled[j]] = db_row
                scores[row, filled[j]] = float(count)
                filled[j] += 1

    def _stats(self) -> dict[str, Any]:
        return {"index_bytes": int(self.table.table.nbytes + self.table.counts.nbytes),
                "db_landmarks": int(self.db_hashes), "tracks": len(self.segment_rows),
                "landmarks_per_s": self.db_hashes / max(self.db_seconds, 1e-9),
                "n_fft": N_FFT, "n_hop": N_HOP, "sample_rate": self.sample_rate, **self.params}
