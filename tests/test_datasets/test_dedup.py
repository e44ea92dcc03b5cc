"""Content deduplication: re-encoded copies and shared sections are found, unrelated audio is not."""
from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from datasets.audio_io import read_audio
from datasets.dedup import Fingerprint, deduplicate, find_overlaps, fingerprint
from tests.helpers import music_like

SR = 8000




def _ber(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.unpackbits((a ^ b).view(np.uint8)).mean())


def _fp(path) -> Fingerprint:
    return fingerprint(read_audio(path, SR), SR)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Fingerprints of a small set of files with known overlaps."""
    d = tmp_path_factory.mktemp("dedup")
    base = music_like(60, seed=1)
    sf.write(d / "base.wav", base, SR)
    # The same content re-encoded: Vorbis at 22.05 kHz, 0.4x gain.
    import torch
    import torchaudio.functional as AF
    up = AF.resample(torch.from_numpy(base), SR, 22050).numpy() * 0.4
    sf.write(d / "reenc.ogg", up, 22050, format="OGG", subtype="VORBIS")
    # A 30 s section shared by two otherwise different tracks, at different places.
    shared = music_like(30, seed=2)
    c = np.concatenate([music_like(20, seed=3), shared, music_like(15, seed=4)])
    dd = np.concatenate([music_like(7.3, seed=5), shared * 0.7, music_like(25, seed=6)])
    sf.write(d / "c.wav", c, SR)
    sf.write(d / "d.flac", dd, SR)
    # A shared section of 10 s only: under the 20 s minimum.
    short = music_like(10, seed=7)
    sf.write(d / "e.wav", np.concatenate([music_like(25, seed=8), short, music_like(20, seed=9)]), SR)
    sf.write(d / "f.wav", np.concatenate([music_like(40, seed=10), short]), SR)
    # Unrelated.
    sf.write(d / "g.wav", music_like(60, seed=11), SR)
    names = ["base.wav", "reenc.ogg", "c.wav", "d.flac", "e.wav", "f.wav", "g.wav"]
    return {n.split(".")[0]: _fp(d / n) for n in names}


def _pairs(overlaps):
    return {(o.a, o.b): o for o in overlaps}


def test_fingerprint_shape_and_gain_invariance():
    x = music_like(10, seed=21)
    fa, fb = fingerprint(x), fingerprint(x * 0.25)
    assert fa.bits.dtype == np.uint32 and len(fa) == len(fa.valid) == len(fa.weak)
    assert abs(fa.duration_s - 10) < 0.5
    ber = _ber(fa.bits, fb.bits)
    assert ber < 0.02
    other = fingerprint(music_like(10, seed=22))
    n = min(len(fa), len(other))
    assert _ber(fa.bits[:n], other.bits[:n]) > 0.4


def test_fingerprint_round_trip(tmp_path):
    fp = fingerprint(music_like(5, seed=3))
    fp.save(tmp_path / "x.npz")
    back = Fingerprint.load(tmp_path / "x.npz")
    assert np.array_equal(back.bits, fp.bits) and np.array_equal(back.valid, fp.valid)
    assert np.array_equal(back.weak, fp.weak) and back.hop_s == fp.hop_s


def test_silence_never_matches():
    x = music_like(30, seed=31)
    a = np.concatenate([x, np.zeros(30 * SR, np.float32)])
    b = np.concatenate([music_like(30, seed=32), np.zeros(30 * SR, np.float32)])
    assert find_overlaps({"a": fingerprint(a), "b": fingerprint(b)}) == []


def test_overlaps(corpus):
    t0 = time.perf_counter()
    pairs = _pairs(find_overlaps(corpus, min_overlap_s=20.0))
    assert time.perf_counter() - t0 < 5.0
    # Re-encoded copy: whole track, no offset.
    ov = pairs[("base", "reenc")]
    assert ov.overlap_s > 57 and ov.match_fraction > 0.95 and abs(ov.offset_s) < 0.05
    assert ov.ber < 0.25
    # Shared 30 s section: content at 20 s in c is at 7.3 s in d.
    ov = pairs[("c", "d")]
    assert abs(ov.overlap_s - 30) < 1.5, ov
    assert abs(ov.offset_s - (7.3 - 20)) < 0.05, ov
    assert abs(ov.start_a_s - 20) < 1.0, ov
    # Nothing else: not the unrelated track, not the 10 s section.
    assert set(pairs) == {("base", "reenc"), ("c", "d")}


def test_short_overlap_found_below_threshold(corpus):
    pairs = _pairs(find_overlaps(corpus, min_overlap_s=5.0))
    ov = pairs[("e", "f")]
    assert abs(ov.overlap_s - 10) < 1.5 and abs(ov.offset_s - (40 - 25)) < 0.05
    assert not any("g" in p for p in pairs)


def test_deduplicate(corpus):
    durations = {k: fp.duration_s for k, fp in corpus.items()}
    durations["reenc"] = durations["base"]  # a tie: broken by id
    kept, dropped = deduplicate(sorted(corpus), corpus, durations)
    assert kept == ["base", "c", "e", "f", "g"]
    by_id = {d.track_id: d for d in dropped}
    assert set(by_id) == {"reenc", "d"}
    assert by_id["reenc"].duplicate_of == "base" and by_id["reenc"].overlap_s > 57
    assert by_id["d"].duplicate_of == "c" and abs(by_id["d"].overlap_s - 30) < 1.5
    # The longest is kept whatever the id order.
    durations["reenc"] = durations["base"] + 1
    kept, dropped = deduplicate(sorted(corpus), corpus, durations)
    assert "reenc" in kept and "base" not in kept


def test_scales_without_all_pairs():
    """~100 tracks of 2 min in a few seconds (index + voting, not all-pairs comparison)."""
    rng = np.random.default_rng(0)
    base = fingerprint(music_like(120, seed=100))
    fps = {}
    for k in range(100):
        # Random sub-fingerprints stand in for distinct tracks: fast to make, same index load.
        n = len(base)
        fps[f"t{k:03d}"] = Fingerprint(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
                                       np.ones(n, bool), rng.integers(0, 32, (n, 3)).astype(np.uint8),
                                       base.hop_s)
    fps["t050"] = base
    fps["copy"] = base
    t0 = time.perf_counter()
    ov = find_overlaps(fps)
    assert time.perf_counter() - t0 < 10.0
    assert [(o.a, o.b) for o in ov] == [("copy", "t050")]
