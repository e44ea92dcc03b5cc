"""Content deduplication of tracks, partial overlaps included.

A track is summarised by a Haitsma-Kalker-style binary fingerprint (Haitsma & Kalker,
"A highly robust audio fingerprinting system", ISMIR 2002): every ``hop_s`` (32 ms) a
0.37 s frame is cut into 33 log-spaced bands over 300-3000 Hz and 32 bits are taken from
the signs of the band-energy differences across neighbouring bands and consecutive frames.
Signs of differences do not change with gain, and band energies survive lossy coding and
resampling, so a re-encoded copy (Vorbis vs Opus, another bitrate, sample rate or level)
gives nearly the same bits: a bit error rate (BER) of about 0.05-0.25 where unrelated
audio gives about 0.5.

:func:`find_overlaps` finds pairs of tracks that share audio: an inverted index maps each
32-bit sub-fingerprint value to the (track, frame) places it occurs (plus, for robustness,
the values one flip of each frame's least reliable bits away); every shared value votes for
a time offset between the two tracks; offsets with enough votes are verified by the BER of
the aligned fingerprints, and the longest contiguous stretch whose sliding-window BER stays
under ``ber_threshold`` gives the overlap length. Only candidate alignments are compared,
never all pairs in full, so a few hundred tracks take seconds.

:func:`deduplicate` keeps one track of each overlapping group and names what it dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .audio_io import read_audio
from .cache import atomic_path, file_sha256

#: Bumped whenever the fingerprint's definition changes; part of every fingerprint cache key.
FINGERPRINT_VERSION = "hk1"


@dataclass(frozen=True)
class FingerprintParams:
    """Parameters of the sub-fingerprint: sample rate, frame, hop and the band layout."""

    sample_rate: int = 8000
    frame_s: float = 0.37
    hop_s: float = 0.032
    f_min: float = 300.0
    f_max: float = 3000.0
    n_weak: int = 3          # least reliable bits kept per frame, for index probing
    silence_db: float = -70.0  # frames quieter than this (dBFS mean square) are not used
    floor_db: float = 50.0     # ... nor frames this far under the track's loud level

    @property
    def frame_samples(self) -> int:
        """Samples in one analysis frame."""
        return int(round(self.frame_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        """Samples between consecutive frames."""
        return int(round(self.hop_s * self.sample_rate))

    def key(self) -> str:
        """A short string that changes with any parameter or the fingerprint version."""
        return (f"{FINGERPRINT_VERSION}-sr{self.sample_rate}-f{self.frame_samples}-h{self.hop_samples}"
                f"-b{self.f_min:g}-{self.f_max:g}-w{self.n_weak}-s{self.silence_db:g}-{self.floor_db:g}")


DEFAULT_PARAMS = FingerprintParams()
N_BITS = 32


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """A track's sub-fingerprints: one 32-bit value every ``hop_s`` seconds.

    ``bits[i]`` describes the audio around ``i * hop_s`` s; ``valid[i]`` is False where the
    audio is (near) silent, so the bits carry no information; ``weak[i]`` holds the positions
    of the ``n_weak`` least reliable bits of frame ``i`` (used to probe the index).
    """

    bits: np.ndarray   # uint32, (n,)
    valid: np.ndarray  # bool, (n,)
    weak: np.ndarray   # uint8, (n, n_weak)
    hop_s: float

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @property
    def duration_s(self) -> float:
        """Time spanned by the sub-fingerprints."""
        return len(self) * self.hop_s

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, for ``np.savez``."""
        return {"bits": self.bits, "valid": self.valid, "weak": self.weak,
                "hop_s": np.asarray(self.hop_s, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "Fingerprint":
        """Inverse of :meth:`to_arrays`."""
        return cls(np.asarray(arrays["bits"], dtype=np.uint32), np.asarray(arrays["valid"], dtype=bool),
                   np.asarray(arrays["weak"], dtype=np.uint8), float(arrays["hop_s"]))

    def save(self, path: Path | str) -> None:
        """Write as ``.npz``, atomically."""
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **self.to_arrays())

    @classmethod
    def load(cls, path: Path | str) -> "Fingerprint":
        """Read a fingerprint written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})


def _band_matrix(params: FingerprintParams, n_fft: int) -> np.ndarray:
    """(n_bins, 33) 0/1 matrix summing FFT power bins into log-spaced bands."""
    edges = np.geomspace(params.f_min, params.f_max, N_BITS + 2)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / params.sample_rate)
    band = np.searchsorted(edges, freqs, side="right") - 1
    mat = np.zeros((freqs.size, N_BITS + 1), dtype=np.float32)
    inside = (band >= 0) & (band <= N_BITS)
    mat[np.nonzero(inside)[0], band[inside]] = 1.0
    return mat


def fingerprint(audio: np.ndarray, sample_rate: int = 8000,
                params: FingerprintParams = DEFAULT_PARAMS) -> Fingerprint:
    """Sub-fingerprints of a mono float signal.

    Audio at another rate than ``params.sample_rate`` (8 kHz) is resampled first, so
    fingerprints of the same content compare whatever rate they were made from.
    """
    import torch

    from .audio_io import resample

    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"fingerprint() wants mono audio, got shape {x.shape}")
    if sample_rate != params.sample_rate:
        x = resample(x, sample_rate, params.sample_rate)
    win, hop = params.frame_samples, params.hop_samples
    n_frames = 0 if x.size < win else 1 + (x.size - win) // hop
    n = max(n_frames - 1, 0)
    if n == 0:
        return Fingerprint(np.zeros(0, np.uint32), np.zeros(0, bool),
                           np.zeros((0, params.n_weak), np.uint8), params.hop_s)
    window = torch.hann_window(win, periodic=False)
    bands = torch.from_numpy(_band_matrix(params, win))
    xt = torch.from_numpy(x)
    energies = []
    chunk = 2048  # frames per STFT call: bounds memory on long tracks
    for f0 in range(0, n_frames, chunk):
        f1 = min(n_frames, f0 + chunk)
        seg = xt[f0 * hop:(f1 - 1) * hop + win]
        spec = torch.stft(seg, n_fft=win, hop_length=hop, window=window, center=False,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()      # (bins, frames)
        energies.append((power.T @ bands).double())
    e = torch.cat(energies).numpy()                          # (n_frames, 33)
    # Band-limited mean square of each frame (Parseval, one-sided spectrum), in dBFS.
    norm = 2.0 / (win * float(window.square().sum()))
    level_db = 10.0 * np.log10(e.sum(axis=1) * norm + 1e-20)
    loud = np.percentile(level_db, 95)
    frame_ok = (level_db > params.silence_db) & (level_db > loud - params.floor_db)
    d = e[:, :-1] - e[:, 1:]                                 # across bands
    dd = d[1:] - d[:-1]                                      # across time
    bits = (dd > 0).astype(np.uint64)
    value = (bits << np.arange(N_BITS, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    valid = frame_ok[1:] & frame_ok[:-1]
    # Reliability of a bit: |dd| relative to the frame's scale.
    scale = np.abs(dd).mean(axis=1, keepdims=True) + 1e-30
    weak = np.argsort(np.abs(dd) / scale, axis=1, kind="stable")[:, :params.n_weak].astype(np.uint8)
    return Fingerprint(value, valid, weak, params.hop_s)


@dataclass(frozen=True)
class Overlap:
    """Two tracks sharing audio.

    Content at time ``t`` of track ``a`` appears at ``t + offset_s`` in track ``b`` (to the
    nearest fingerprint hop, 32 ms by default). The
    longest contiguous matching stretch starts at ``start_a_s`` in ``a`` and lasts
    ``overlap_s``; ``match_fraction`` is that length over the shorter track's length (about
    1.0 for a whole-track duplicate); ``ber`` is the bit error rate over the stretch.
    """

    a: str
    b: str
    offset_s: float
    overlap_s: float
    match_fraction: float
    ber: float = float("nan")
    start_a_s: float = 0.0


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint32 element (numpy >= 2.0 has a ufunc; a byte table otherwise)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POP8[np.ascontiguousarray(x, dtype=np.uint32).view(np.uint8)].reshape(*x.shape, 4).sum(-1)


def _longest_run(ok: np.ndarray, max_gap: int) -> tuple[int, int]:
    """(start, stop) of the longest stretch of True, bridging False gaps of <= max_gap."""
    if not ok.any():
        return 0, 0
    idx = np.flatnonzero(ok)
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _verify(fa: Fingerprint, fb: Fingerprint, offset: int, window: int, ber_threshold: float,
            max_gap: int) -> tuple[int, int, float]:
    """Longest matching stretch of a against b shifted by ``offset`` frames: (start_a, length, ber)."""
    i0 = max(0, -offset)
    i1 = min(len(fa), len(fb) - offset)
    if i1 - i0 < window:
        return 0, 0, 1.0
    a_bits, b_bits = fa.bits[i0:i1], fb.bits[i0 + offset:i1 + offset]
    both = fa.valid[i0:i1] & fb.valid[i0 + offset:i1 + offset]
    err = np.where(both, _popcount(a_bits ^ b_bits), 0).astype(np.float64)
    cs_err = np.concatenate([[0.0], np.cumsum(err)])
    cs_n = np.concatenate([[0], np.cumsum(both)])
    n = err.size
    half = window // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    n_valid = cs_n[hi] - cs_n[lo]
    w_ber = (cs_err[hi] - cs_err[lo]) / (N_BITS * np.maximum(n_valid, 1))
    ok = (n_valid >= (hi - lo) // 2) & (w_ber < ber_threshold)
    # A centred window lets a stretch bleed by up to half a window into unmatched audio:
    # trim the ends back to frames that match on their own (frame BER under the threshold).
    start, stop = _longest_run(ok, max_gap)
    frame_ok = both & (err < ber_threshold * N_BITS)
    while start < stop and not frame_ok[start:start + 3].all():
        start += 1
    while stop > start and not frame_ok[stop - 3:stop].all():
        stop -= 1
    if stop - start <= 0:
        return 0, 0, 1.0
    m = both[start:stop]
    ber = float(err[start:stop][m].sum() / (N_BITS * max(int(m.sum()), 1)))
    return i0 + start, stop - start, ber


def _candidate_votes(fps: Sequence[Fingerprint], max_bucket: int, probe: bool) -> tuple[np.ndarray, ...]:
    """Offset votes for track pairs from an inverted index of sub-fingerprint values.

    Returns arrays (ta, tb, offset, votes) with ta < tb, offset = frame in b - frame in a.
    """
    keys, tracks, frames, orig = [], [], [], []
    for t, fp in enumerate(fps):
        sel = fp.valid & (fp.bits != 0) & (fp.bits != 0xFFFFFFFF)
        f = np.flatnonzero(sel).astype(np.int64)
        v = fp.bits[sel]
        keys.append(v)
        tracks.append(np.full(f.size, t, np.int64))
        frames.append(f)
        orig.append(np.ones(f.size, bool))
        if probe and fp.weak.shape[1]:
            for j in range(fp.weak.shape[1]):
                flip = (np.uint32(1) << fp.weak[sel, j].astype(np.uint32)).astype(np.uint32)
                keys.append(v ^ flip)
                tracks.append(np.full(f.size, t, np.int64))
                frames.append(f)
                orig.append(np.zeros(f.size, bool))
    if not keys:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    key = np.concatenate(keys)
    trk = np.concatenate(tracks)
    frm = np.concatenate(frames)
    org = np.concatenate(orig)
    order = np.argsort(key, kind="stable")
    key, trk, frm, org = key[order], trk[order], frm[order], org[order]
    # Bucket sizes; buckets larger than max_bucket are stop-words (silence-like, drones).
    new = np.concatenate([[True], key[1:] != key[:-1]])
    gid = np.cumsum(new) - 1
    sizes = np.bincount(gid)
    keep = (sizes[gid] >= 2) & (sizes[gid] <= max_bucket)
    key, trk, frm, org, gid = key[keep], trk[keep], frm[keep], org[keep], gid[keep]
    pa, pb = [], []
    for d in range(1, max_bucket):
        if key.size <= d:
            break
        same = gid[d:] == gid[:-d]
        if not same.any():
            break
        i = np.flatnonzero(same)
        j = i + d
        ok = (trk[i] != trk[j]) & (org[i] | org[j])
        pa.append(i[ok])
        pb.append(j[ok])
    if not pa:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    i = np.concatenate(pa)
    j = np.concatenate(pb)
    swap = trk[i] > trk[j]
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    ta, tb = trk[i], trk[j]
    off = frm[j] - frm[i]
    # The same pair of frames may meet through several probes: count it once.
    span = int(max(len(fp) for fp in fps)) + 1
    n_t = len(fps)
    if float(n_t) ** 2 * float(2 * span) ** 2 >= 2.0 ** 62:
        raise ValueError(f"{n_t} tracks of up to {span} frames overflow the pair codes; "
                         "deduplicate the collection in parts")
    pair_frames = np.unique(((ta * n_t + tb) * span + frm[i]) * span + frm[j])
    fj = pair_frames % span
    rest = pair_frames // span
    fi = rest % span
    pair = rest // span
    off = fj - fi
    code = pair * (2 * span) + (off + span)
    uniq, votes = np.unique(code, return_counts=True)
    pair, off = uniq // (2 * span), uniq % (2 * span) - span
    return pair // n_t, pair % n_t, off, votes


def find_overlaps(fingerprints: Mapping[str, Fingerprint], min_overlap_s: float = 20.0, *,
                  ber_threshold: float = 0.35, window_s: float = 2.0, max_gap_s: float = 2.0,
                  min_votes: int = 3, max_offsets_per_pair: int = 4, max_bucket: int = 64,
                  probe: bool = True) -> list[Overlap]:
    """Pairs of tracks whose longest shared stretch of audio lasts at least ``min_overlap_s``.

    Candidates come from offset voting over an inverted index of sub-fingerprint values (a
    pair with ``min_votes`` shared values at the same time offset, +-1 frame); each is
    verified by the BER of the aligned fingerprints over a sliding ``window_s`` window
    (matching where BER < ``ber_threshold``, non-matching gaps up to ``max_gap_s`` bridged).
    Returns one :class:`Overlap` per pair (the longest stretch found), ``a < b``, sorted by
    (a, b). All fingerprints must share one hop.
    """
    ids = sorted(fingerprints)
    fps = [fingerprints[i] for i in ids]
    if len(fps) < 2:
        return []
    hops = {round(fp.hop_s, 9) for fp in fps}
    if len(hops) != 1:
        raise ValueError(f"fingerprints have different hops {sorted(hops)}; make them with one FingerprintParams")
    hop = fps[0].hop_s
    ta, tb, off, votes = _candidate_votes(fps, max_bucket, probe)
    if ta.size == 0:
        return []
    # Smooth votes over +-1 frame: the true offset often falls between two frames.
    n_t = len(fps)
    span = 2 * (int(max(len(fp) for fp in fps)) + 2)
    code = (ta * n_t + tb) * span + (off + span // 2)
    order = np.argsort(code)
    code, ta, tb, off, votes = code[order], ta[order], tb[order], off[order], votes[order]
    smooth = votes.copy()
    for delta in (-1, 1):
        pos = np.searchsorted(code, code + delta)
        pos_c = np.minimum(pos, code.size - 1)
        hit = code[pos_c] == code + delta
        smooth = smooth + np.where(hit, votes[pos_c], 0)
    cand = np.flatnonzero(smooth >= min_votes)
    window = max(3, int(round(window_s / hop)))
    max_gap = int(round(max_gap_s / hop))
    min_frames = min_overlap_s / hop
    best: dict[tuple[int, int], Overlap] = {}
    # Per pair, verify the best-voted offsets that are not neighbours of one already tried.
    by_pair: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for c in cand[np.argsort(-smooth[cand], kind="stable")]:
        by_pair.setdefault((int(ta[c]), int(tb[c])), []).append((int(off[c]), int(smooth[c])))
    for (a, b), offs in by_pair.items():
        fa, fb = fps[a], fps[b]
        tried: list[int] = []
        for o, _v in offs:
            if len(tried) >= max_offsets_per_pair:
                break
            if any(abs(o - t) <= 2 for t in tried):
                continue
            tried.append(o)
            for oo in (o - 1, o, o + 1):
                start, length, ber = _verify(fa, fb, oo, window, ber_threshold, max_gap)
                if length < min_frames:
                    continue
                shorter = min(len(fa), len(fb))
                ov = Overlap(ids[a], ids[b], round(oo * hop, 4), round(length * hop, 3),
                             round(min(1.0, length / max(shorter, 1)), 4), round(ber, 4),
                             round(start * hop, 3))
                prev = best.get((a, b))
                if prev is None or (ov.overlap_s, -ov.ber) > (prev.overlap_s, -prev.ber):
                    best[(a, b)] = ov
    return [best[k] for k in sorted(best)]


@dataclass(frozen=True)
class Duplicate:
    """A track dropped because ``duplicate_of`` (a kept track) holds ``overlap_s`` s of its audio."""

    track_id: str
    duplicate_of: str
    overlap_s: float
    offset_s: float
    match_fraction: float


def deduplicate(track_ids: Iterable[str], fingerprints: Mapping[str, Fingerprint],
                durations: Mapping[str, float], min_overlap_s: float = 20.0,
                overlaps: Sequence[Overlap] | None = None) -> tuple[list[str], list[Duplicate]]:
    """Keep one track of each group of overlapping tracks; return (kept ids, dropped).

    Tracks are visited longest first (ties by id); a track is kept unless it overlaps an
    already kept track by at least ``min_overlap_s``, in which case it is dropped as a
    duplicate of that track (the one with the longest overlap). So the longest track of a
    group of mutual duplicates is kept, no two kept tracks share audio, and in a chain
    A-B-C where only neighbours overlap, dropping B can leave both A and C. Pass
    ``overlaps`` (from :func:`find_overlaps`) to skip recomputing them. Track ids without a
    fingerprint are kept as they are.
    """
    ids = list(dict.fromkeys(track_ids))
    if overlaps is None:
        overlaps = find_overlaps({i: fingerprints[i] for i in ids if i in fingerprints}, min_overlap_s)
    idset = set(ids)
    nbrs: dict[str, list[Overlap]] = {}
    for ov in overlaps:
        if ov.overlap_s < min_overlap_s or ov.a not in idset or ov.b not in idset:
            continue
        nbrs.setdefault(ov.a, []).append(ov)
        nbrs.setdefault(ov.b, []).append(ov)
    kept: set[str] = set()
    dropped: list[Duplicate] = []
    for tid in sorted(ids, key=lambda i: (-float(durations[i]), i)):
        hits = [ov for ov in nbrs.get(tid, []) if (ov.b if ov.a == tid else ov.a) in kept]
        if not hits:
            kept.add(tid)
            continue
        ov = max(hits, key=lambda o: (o.overlap_s, -o.ber))
        other = ov.b if ov.a == tid else ov.a
        # offset_s: time in the kept track minus time in the dropped one, for the same audio.
        offset = ov.offset_s if ov.a == tid else -ov.offset_s
        dropped.append(Duplicate(tid, other, ov.overlap_s, offset, ov.match_fraction))
    return [i for i in ids if i in kept], sorted(dropped, key=lambda d: d.track_id)


def fingerprint_file(path: Path | str, fp_dir: Path | None = None,
                     params: FingerprintParams = DEFAULT_PARAMS) -> tuple[str, Fingerprint, bool]:
    """Fingerprint of an audio file, cached in ``fp_dir`` under the file's sha256.

    Returns (sha256, fingerprint, whether it came from the cache). The file is decoded at
    ``params.sample_rate`` only on a cache miss; nothing is cached when ``fp_dir`` is None.
    """
    sha = file_sha256(path)
    cached = Path(fp_dir) / f"{sha}.npz" if fp_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            return sha, Fingerprint.load(cached), True
        except Exception:  # a damaged cache entry: recompute it
            pass
    audio = read_audio(path, params.sample_rate)
    fp = fingerprint(audio, params.sample_rate, params)
    if cached is not None:
        fp.save(cached)
    return sha, fp, False


def content_groups(ids: Sequence[str], overlaps: Iterable[Overlap], durations: Mapping[str, float]
                   ) -> dict[str, str]:
    """Connected groups of clips that share audio: {id: group}, a group named by its longest
    clip (ties by id). Overlaps naming ids not in ``ids`` are ignored."""
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ov in overlaps:
        if ov.a in parent and ov.b in parent:
            ra, rb = root(ov.a), root(ov.b)
            if ra != rb:
                parent[rb] = ra
    members: dict[str, list[str]] = {}
    for i in ids:
        members.setdefault(root(i), []).append(i)
    out: dict[str, str] = {}
    for group in members.values():
        name = min(group, key=lambda i: (-float(durations[i]), i))
        out.update({i: name for i in group})
    return out


def shared_groups(group_of: Mapping[str, str]) -> dict[str, list[str]]:
    """The groups of ``content_groups`` that hold two or more items: {group: member ids, sorted},
    in the order of each group's first member."""
    members: dict[str, list[str]] = {}
    for item in sorted(group_of):
        members.setdefault(group_of[item], []).append(item)
    return {g: m for g, m in members.items() if len(m) > 1}
