"""Content overlap across splits: does any recording of the training split reappear in val/test?

Names prove nothing (game packages ship one recording under several names), so each check
compares content:

- :func:`track_overlap`: tracks of the train split against val and test tracks, by the
  Haitsma-Kalker fingerprints of :mod:`datasets.dedup` with offset voting
  (:func:`datasets.dedup.find_overlaps`): a pair counts when it shares ``min_overlap_s``
  of audio.
- :func:`noise_overlap`: the same for noise clips (train against val and test).
- :func:`room_overlap`: train RIRs against val and test RIRs: a pair counts when the RIRs
  are equal once quantised to 16 bits, or when the peak normalised cross-correlation of their
  reverberant parts (after the direct path) reaches ``ncc_threshold``.

Each returns the number of cross-split pairs sharing content, 0 for clean splits;
:func:`content_overlap` runs all three for a run's record. Fingerprints are cached: a
debian-music track's under its catalogue's sha256 cache, any other file's under
``cache_dir("fingerprints", <params>)`` by its sha256, synthetic tracks and noise by the
owner's identity (which fixes their audio) and the item id.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from datasets.corpora.corpus import Corpus
from datasets.noise.bank import CombinedNoiseBank, NoiseBank
from datasets.noise.synth import SynthNoiseBank

from .audio_io import AudioReadError
from .cache import cache_dir, stable_hash
from .dedup import DEFAULT_PARAMS, Fingerprint, FingerprintParams, Overlap, find_overlaps, fingerprint, fingerprint_file
from .rooms import RoomBank

TRACK_MIN_OVERLAP_S = 20.0  # as the debian-music deduplication
NOISE_MIN_OVERLAP_S = 0.5   # as the debian noise bank's grouping
ROOM_NCC_THRESHOLD = 0.9
DIRECT_PATH_S = 0.0025      # left out of the RIR comparison: every RIR starts with a unit spike


# --------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------

def _cached(path: Path, make: Callable[[], Fingerprint]) -> Fingerprint:
    if path.is_file():
        try:
            return Fingerprint.load(path)
        except Exception:  # damaged: make it again
            pass
    fp = make()
    fp.save(path)
    return fp


def track_fingerprints(corpus: Corpus, params: FingerprintParams = DEFAULT_PARAMS, workers: int = 2,
                       progress: bool = False) -> dict[str, Fingerprint]:
    """Fingerprints of every track of a corpus, {track_id: fingerprint}, cached.

    A track whose metadata names its sha256 and whose corpus keeps a fingerprint cache
    (debian-music: ``<root>/fingerprints/<params>/<sha256>.npz``) is read from there; a
    track with a file is fingerprinted from the file (cached by its sha256); a synthetic
    track from ``corpus.load`` (cached by the corpus identity, which fixes its audio); any
    other track from ``corpus.load``, uncached. A track whose audio does not decode is left
    out, as query sets and the DB leave it out.
    """
    from datasets.corpora.synth import SynthCorpus
    from datasets.progress import tqdm

    tracks = corpus.tracks()
    file_cache = cache_dir("fingerprints", params.key(), "files")
    corpus_root = getattr(corpus, "root", None)
    own_cache = Path(corpus_root) / "fingerprints" / params.key() if corpus_root is not None else None
    load_cache = (cache_dir("fingerprints", params.key(), "corpus-" + stable_hash(corpus.identity()))
                  if isinstance(corpus, SynthCorpus) else None)  # its identity fixes its audio
    sr = corpus.protocol.sample_rate

    def one(track) -> Fingerprint | None:
        try:
            return fingerprint_of(track)
        except AudioReadError:  # left out of query sets and the DB too (datasets.queries.split_segments)
            return None

    def fingerprint_of(track) -> Fingerprint:
        sha = track.meta.get("sha256") if track.meta else None
        if sha and own_cache is not None and (own_cache / f"{sha}.npz").is_file():
            try:
                return Fingerprint.load(own_cache / f"{sha}.npz")
            except Exception:  # damaged: fingerprint the file again
                pass
        if track.path is not None:
            return fingerprint_file(track.path, file_cache, params)[1]
        if load_cache is None:
            return fingerprint(corpus.load(track.track_id), sr, params)
        return _cached(load_cache / f"{stable_hash(track.track_id)}.npz",
                       lambda: fingerprint(corpus.load(track.track_id), sr, params))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {t.track_id: pool.submit(one, t) for t in tracks}
        done = {i: f.result() for i, f in tqdm(futures.items(), desc="fingerprinting tracks", unit="track",
                                                disable=not progress)}
    return {i: fp for i, fp in done.items() if fp is not None}


def noise_fingerprints(bank: NoiseBank, params: FingerprintParams = DEFAULT_PARAMS) -> dict[str, Fingerprint]:
    """Fingerprints of every clip of a noise bank, {noise_id: fingerprint}.

    A bank that keeps its own (``content_fingerprints``, the Debian bank) hands them over; a
    combined bank asks its members; a clip read from a file is fingerprinted from the file
    (cached by its sha256); synthetic clips from ``bank.load`` (cached by the bank's
    identity, which fixes their content); any other clip from ``bank.load``, uncached.
    """
    if isinstance(bank, CombinedNoiseBank):
        out: dict[str, Fingerprint] = {}
        for member in bank.banks:
            out.update(noise_fingerprints(member, params))
        return out
    own = getattr(bank, "content_fingerprints", None)
    ids = [c.noise_id for c in bank.clips()]
    if own is not None and set(own) >= set(ids):
        return {i: own[i] for i in ids}
    sr = bank.protocol.sample_rate
    file_cache = cache_dir("fingerprints", params.key(), "files")
    synth_cache = (cache_dir("fingerprints", params.key(), "noise-" + stable_hash(bank.identity()))
                   if isinstance(bank, SynthNoiseBank) else None)
    out = {}
    for i in ids:
        path = bank.source_path(i)
        if path is not None:
            out[i] = fingerprint_file(path, file_cache, params)[1]
        elif synth_cache is not None:
            out[i] = _cached(synth_cache / f"{stable_hash(i)}.npz", lambda i=i: fingerprint(bank.load(i), sr, params))
        else:
            out[i] = fingerprint(bank.load(i), sr, params)
    return out


# --------------------------------------------------------------------------------------
# Cross-split pairs
# --------------------------------------------------------------------------------------

def cross_split_overlaps(fingerprints: Mapping[str, Fingerprint], splits: Mapping[str, str],
                         min_overlap_s: float) -> list[Overlap]:
    """Overlaps (:func:`datasets.dedup.find_overlaps`) between an item of the train split and
    an item of another split."""
    overlaps = find_overlaps(dict(fingerprints), min_overlap_s)
    return [o for o in overlaps
            if splits[o.a] != splits[o.b] and "train" in (splits[o.a], splits[o.b])]


def track_overlap_pairs(corpus: Corpus, min_overlap_s: float = TRACK_MIN_OVERLAP_S,
                        params: FingerprintParams = DEFAULT_PARAMS, progress: bool = False) -> list[Overlap]:
    """Pairs (train track, val or test track) sharing at least ``min_overlap_s`` of audio."""
    fps = track_fingerprints(corpus, params, progress=progress)
    return cross_split_overlaps(fps, {i: corpus.split(i) for i in fps}, min_overlap_s)


def track_overlap(corpus: Corpus, min_overlap_s: float = TRACK_MIN_OVERLAP_S,
                  params: FingerprintParams = DEFAULT_PARAMS, progress: bool = False) -> int:
    """Number of (train track, val or test track) pairs sharing content; 0 for clean splits."""
    return len(track_overlap_pairs(corpus, min_overlap_s, params, progress))


def noise_overlap_pairs(bank: NoiseBank, min_overlap_s: float = NOISE_MIN_OVERLAP_S,
                        params: FingerprintParams = DEFAULT_PARAMS) -> list[Overlap]:
    """Pairs (train clip, val or test clip) sharing at least ``min_overlap_s`` of audio."""
    fps = noise_fingerprints(bank, params)
    return cross_split_overlaps(fps, {c.noise_id: c.split for c in bank.clips()}, min_overlap_s)


def noise_overlap(bank: NoiseBank, min_overlap_s: float = NOISE_MIN_OVERLAP_S,
                  params: FingerprintParams = DEFAULT_PARAMS) -> int:
    """Number of (train clip, val or test clip) pairs sharing content; 0 for clean splits."""
    return len(noise_overlap_pairs(bank, min_overlap_s, params))


@dataclass(frozen=True)
class RoomMatch:
    """Two RIRs of different splits with the same content: ``ncc`` is the peak normalised
    cross-correlation of their reverberant parts (1.0 for equal quantised RIRs)."""

    a: str
    b: str
    ncc: float
    identical: bool


def _quantised_key(rir: np.ndarray) -> str:
    q = np.clip(np.round(np.asarray(rir, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(q.tobytes()).hexdigest()


def _reverberant_part(rir: np.ndarray, sample_rate: int) -> np.ndarray:
    h = np.asarray(rir, dtype=np.float64)
    tail = h[int(round(DIRECT_PATH_S * sample_rate)):]
    return tail if tail.size and np.any(tail) else h  # a dry RIR is compared whole


def room_overlap_pairs(bank: RoomBank, ncc_threshold: float = ROOM_NCC_THRESHOLD) -> list[RoomMatch]:
    """Pairs (train RIR, val or test RIR) that are the same response: equal once quantised to
    16 bits, or with peak normalised cross-correlation of the reverberant parts >= ``ncc_threshold``."""
    sr = bank.protocol.sample_rate
    rooms = bank.rooms()
    rirs = {r.rir_id: bank.load(r.rir_id) for r in rooms}
    keys = {i: _quantised_key(h) for i, h in rirs.items()}
    tails = {i: _reverberant_part(h, sr) for i, h in rirs.items()}
    size = 1 << (2 * max((t.size for t in tails.values()), default=1) - 1).bit_length()
    spectra = {i: np.fft.rfft(t, size) for i, t in tails.items()}  # one FFT per RIR, not per pair
    norms = {i: float(np.linalg.norm(t)) for i, t in tails.items()}
    train = [r.rir_id for r in rooms if r.split == "train"]
    other = [r.rir_id for r in rooms if r.split != "train"]
    out = []
    for a in train:
        for b in other:
            same = keys[a] == keys[b]
            if same:
                ncc = 1.0
            elif norms[a] == 0 or norms[b] == 0:
                ncc = 0.0
            else:
                xc = np.fft.irfft(spectra[a] * np.conj(spectra[b]), size)
                ncc = float(np.max(np.abs(xc)) / (norms[a] * norms[b]))
            if same or ncc >= ncc_threshold:
                out.append(RoomMatch(a, b, round(ncc, 4), same))
    return out


def room_overlap(bank: RoomBank, ncc_threshold: float = ROOM_NCC_THRESHOLD) -> int:
    """Number of (train RIR, val or test RIR) pairs with the same response; 0 for clean splits."""
    return len(room_overlap_pairs(bank, ncc_threshold))


def content_overlap_pairs(corpus: Corpus, noise: NoiseBank, rooms: RoomBank) -> dict[str, list[str]]:
    """Cross-split content overlaps of a run's data, each pair described for a person:
    {"tracks": [...], "noise": [...], "rooms": [...]} (all must be empty). A pair names both
    items, their splits and, for noise clips read from files, the files."""
    def where(item: str, split: str, path: Path | None = None) -> str:
        return f"{split} {item!r}" + (f" ({path})" if path is not None else "")

    tracks = [f"{where(o.a, corpus.split(o.a))} and {where(o.b, corpus.split(o.b))} share {o.overlap_s:.1f} s"
              for o in track_overlap_pairs(corpus)]
    noise_items = []
    for o in noise_overlap_pairs(noise):
        a, b = noise.clip(o.a), noise.clip(o.b)
        noise_items.append(f"{where(o.a, a.split, noise.source_path(o.a))} and "
                           f"{where(o.b, b.split, noise.source_path(o.b))} share {o.overlap_s:.1f} s")
    split_of = {r.rir_id: r.split for r in rooms.rooms()}
    room_items = [f"{where(m.a, split_of[m.a])} and {where(m.b, split_of[m.b])} are the same response "
                  f"({'identical' if m.identical else f'ncc {m.ncc:.3f}'})" for m in room_overlap_pairs(rooms)]
    return {"tracks": tracks, "noise": noise_items, "rooms": room_items}


def content_overlap(corpus: Corpus, noise: NoiseBank, rooms: RoomBank) -> dict[str, int]:
    """Cross-split content overlaps of a run's data: {"tracks": n, "noise": n, "rooms": n}, each
    the number of (train, val/test) pairs sharing content (all must be 0)."""
    return {kind: len(pairs) for kind, pairs in content_overlap_pairs(corpus, noise, rooms).items()}


class SplitLeakError(ValueError):
    """Train and val/test data share content; the message names the pairs."""


def check_no_leak(corpus: Corpus, noise: NoiseBank, rooms: RoomBank, shown: int = 10) -> dict[str, int]:
    """The counts of :func:`content_overlap`, or SplitLeakError naming up to ``shown`` pairs of each kind."""
    pairs = content_overlap_pairs(corpus, noise, rooms)
    if any(pairs.values()):
        lines = []
        for kind, items in pairs.items():
            lines += [f"  {kind}: {item}" for item in items[:shown]]
            if len(items) > shown:
                lines.append(f"  {kind}: ... and {len(items) - shown} more")
        hint = ("recordings cut from one source must stay in one split: a folder noise bank groups clips by "
                "content, so this means the same audio sits in two folders or banks; remove the copies")
        raise SplitLeakError(f"train/test leak: {sum(map(len, pairs.values()))} cross-split pair(s) share content "
                             f"(all must be 0); {hint}:\n" + "\n".join(lines))
    return {kind: 0 for kind in pairs}
