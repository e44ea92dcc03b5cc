"""Tests of the embedded synthetic corpus (datasets/corpora/synth.py)."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import datasets.corpora.synth as synth
from datasets.cache import CACHE_ENV
from datasets.corpora.synth import (
    BAND_LIMIT,
    DRUM_NAMES,
    GENERATOR_VERSION,
    INSTRUMENT_NAMES,
    PEAK,
    SynthCorpus,
    generate_track,
    render_drum,
    render_note,
)
from datasets.protocol import Protocol
from datasets.splits import SPLITS

SR = 8000
SMALL = dict(n_tracks=4, min_duration_s=30.0, max_duration_s=36.0, progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthCorpus, dict[str, np.ndarray]]:
    """A 4-track corpus generated once (through the 2-worker pool) into a module cache dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("synth-cache")))
        corpus = SynthCorpus(**SMALL)
        corpus.ensure_cached(workers=2)
        yield corpus, {t.track_id: corpus.load(t.track_id) for t in corpus.tracks()}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """An empty cache root for one test."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap generate_track (the real synthesis still runs) and record the track indices it renders."""
    calls: list[int] = []
    real = synth.generate_track

    def counting(seed: int, index: int, duration_s: float, sample_rate: int):
        calls.append(index)
        return real(seed, index, duration_s, sample_rate)

    monkeypatch.setattr(synth, "generate_track", counting)
    return calls


def _log_spectra(segments: np.ndarray) -> np.ndarray:
    """Mean-removed, unit-norm log power spectra (80 dB floor below each segment's peak bin)."""
    power = np.abs(np.fft.rfft(segments * np.hanning(segments.shape[1]), axis=1)) ** 2
    logs = np.log10(np.maximum(power, power.max(axis=1, keepdims=True) * 1e-8))
    logs -= logs.mean(axis=1, keepdims=True)
    return logs / np.linalg.norm(logs, axis=1, keepdims=True)


# ------------------------------------------------------------------ determinism

def test_same_seed_same_bytes_across_fresh_cache_and_processes(small, fresh_cache) -> None:
    corpus, audio = small
    again = SynthCorpus(**{**SMALL, "n_tracks": 2})  # a smaller corpus is a prefix of the larger one
    assert again.cache_path != corpus.cache_path
    again.ensure_cached(workers=1)  # in this process, whereas `small` went through the pool
    for track in again.tracks():
        assert again.load(track.track_id).tobytes() == audio[track.track_id].tobytes()
    direct, _ = generate_track(0, 1, corpus.track("synth-0001").duration_s, SR)
    assert direct.tobytes() == audio["synth-0001"].tobytes()


def test_other_seed_gives_other_audio(small) -> None:
    corpus, audio = small
    other, _ = generate_track(1, 0, corpus.track("synth-0000").duration_s, SR)
    ref = audio["synth-0000"]
    n = min(len(other), len(ref))
    assert not np.allclose(other[:n], ref[:n], atol=1e-3)


# ------------------------------------------------------------------ tracks, durations, splits

def test_durations_in_range_and_match_sample_counts(small) -> None:
    corpus, audio = small
    for track in corpus.tracks():
        assert SMALL["min_duration_s"] <= track.duration_s <= SMALL["max_duration_s"]
        assert len(audio[track.track_id]) == round(track.duration_s * SR)
    assert len({t.duration_s for t in corpus.tracks()}) == len(corpus.tracks())


def test_default_size_is_at_least_an_hour_and_needs_no_audio(fresh_cache) -> None:
    corpus = SynthCorpus(progress=False)
    durations = [t.duration_s for t in corpus.tracks()]
    assert len(durations) == 80 >= 60
    assert all(30.0 <= d <= 120.0 for d in durations)
    assert corpus.total_duration_s() >= 3600.0
    assert len(corpus.missing()) == 80  # listing tracks generated nothing


def test_ids_meta_and_splits_stable(small) -> None:
    corpus, _ = small
    again = SynthCorpus(**SMALL)
    assert [t.track_id for t in corpus.tracks()] == ["synth-0000", "synth-0001", "synth-0002", "synth-0003"]
    assert [t.meta for t in again.tracks()] == [t.meta for t in corpus.tracks()]
    big = SynthCorpus(n_tracks=200, progress=False)
    splits = [big.split(t.track_id) for t in big.tracks()]
    twin = SynthCorpus(n_tracks=200, progress=False)
    assert splits == [twin.split(t.track_id) for t in twin.tracks()]
    assert set(splits) == set(SPLITS)
    for track in corpus.tracks():
        assert set(track.meta) >= {"tempo_bpm", "key", "instruments"}
        assert all(isinstance(v, str) for v in track.meta.values())
        assert set(track.meta["instruments"].split(",")) & set(INSTRUMENT_NAMES)
    _, meta = generate_track(0, 2, 30.0, SR)
    assert meta == corpus.track("synth-0002").meta


def test_tracks_vary_in_tempo_key_and_instruments() -> None:
    plans = [synth.plan_track(0, i) for i in range(40)]
    assert len({p.tempo_bpm for p in plans}) > 30
    assert len({p.key for p in plans}) > 10
    assert len({(p.chords, p.melody) for p in plans}) > 5


# ------------------------------------------------------------------ audio properties

def test_audio_finite_normalised_and_never_silent(small) -> None:
    _, audio = small
    window, hop = SR, SR // 2
    for track_id, a in audio.items():
        assert a.dtype == np.float32 and a.ndim == 1
        assert np.all(np.isfinite(a))
        assert np.max(np.abs(a)) <= 1.0
        assert np.max(np.abs(a)) == pytest.approx(PEAK, abs=1e-3)
        frames = np.lib.stride_tricks.sliding_window_view(a, window)[::hop]
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        assert rms.min() > 0.03, f"{track_id}: a near-silent 1 s window (rms {rms.min():.4f})"


def test_no_two_segments_near_identical(small) -> None:
    _, audio = small
    segments = np.concatenate([a[: len(a) // SR * SR].reshape(-1, SR) for a in audio.values()])
    spectra = _log_spectra(segments)
    sim = spectra @ spectra.T
    np.fill_diagonal(sim, -1.0)
    assert sim.max() < 0.98, f"segments {np.unravel_index(sim.argmax(), sim.shape)} are near-identical"
    # The check can fail: the same music 10 samples later and 1 dB quieter scores above the bar.
    track = next(iter(audio.values()))
    copy = 0.89 * track[5 * SR - 10: 6 * SR - 10]
    pair = _log_spectra(np.stack([track[5 * SR: 6 * SR], copy]))
    assert pair[0] @ pair[1] > 0.98


def test_no_two_bars_sample_identical(small) -> None:
    corpus, audio = small
    track = corpus.tracks()[0]
    bar = int(round(4 * 60.0 / float(track.meta["tempo_bpm"]) * SR))
    a = audio[track.track_id]
    bars = [a[i: i + bar].tobytes() for i in range(0, len(a) - bar + 1, bar)]
    assert len(set(bars)) == len(bars)


def _timbre_features(instrument: str) -> np.ndarray:
    """Harmonic profile (energy near k*f0, k = 1..12, in dB) and 10-frame loudness envelope of A3."""
    note = render_note(instrument, 57, 1.0, SR)[:SR]
    note = np.pad(note, (0, SR - len(note)))
    power = np.abs(np.fft.rfft(note * np.hanning(SR))) ** 2
    freqs = np.fft.rfftfreq(SR, 1.0 / SR)
    f0 = synth.midi_to_hz(57)
    bands = np.array([power[np.abs(freqs - k * f0) < f0 / 2].sum() for k in range(1, 13)])
    profile = 10 * np.log10(bands / bands.sum() + 1e-6) / 60.0
    envelope = np.sqrt(np.mean(note.reshape(10, -1) ** 2, axis=1))
    return np.concatenate([profile, envelope / envelope.max()])


def test_instruments_have_distinct_timbres() -> None:
    features = {name: _timbre_features(name) for name in INSTRUMENT_NAMES}
    assert len(features) >= 5
    for a, b in itertools.combinations(features, 2):
        distance = np.linalg.norm(features[a] - features[b])
        assert distance > 0.3, f"{a} and {b} sound alike (feature distance {distance:.3f})"


@pytest.mark.parametrize("instrument", INSTRUMENT_NAMES)
def test_notes_band_limited(instrument: str) -> None:
    note = render_note(instrument, 96, 0.5, SR)  # C7: only the fundamental region fits under 3.6 kHz
    assert np.all(np.isfinite(note)) and np.any(note)
    power = np.abs(np.fft.rfft(note * np.hanning(len(note)))) ** 2
    freqs = np.fft.rfftfreq(len(note), 1.0 / SR)
    assert power[freqs > BAND_LIMIT * SR].sum() < 1e-5 * power.sum()
    assert not np.any(render_note(instrument, 125, 0.2, SR))  # every partial above the limit: dropped


def test_drums_render_and_differ() -> None:
    rng = np.random.default_rng(0)
    hits = {kind: render_drum(kind, SR, rng) for kind in DRUM_NAMES}
    assert all(np.all(np.isfinite(h)) and np.any(h) for h in hits.values())
    two_snares = render_drum("snare", SR, rng), render_drum("snare", SR, rng)
    assert not np.array_equal(*two_snares)
    with pytest.raises(ValueError, match="kind"):
        render_drum("cowbell", SR, rng)


# ------------------------------------------------------------------ cache

def test_second_load_reads_cache_and_generation_resumes(fresh_cache, monkeypatch) -> None:
    calls = _count_calls(monkeypatch)
    corpus = SynthCorpus(n_tracks=2, min_duration_s=30.0, max_duration_s=32.0, progress=False)
    corpus.ensure_cached(workers=1)
    assert sorted(calls) == [0, 1]
    files = sorted(corpus.cache_path.glob("synth-*.npy"))
    assert [f.name for f in files] == ["synth-0000.npy", "synth-0001.npy"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    first = corpus.load("synth-0001").tobytes()

    calls.clear()
    again = SynthCorpus(n_tracks=2, min_duration_s=30.0, max_duration_s=32.0, progress=False)
    assert [again.load(t.track_id).tobytes() for t in again.tracks()][1] == first
    assert calls == []
    assert [f.stat().st_mtime_ns for f in files] == mtimes

    files[1].unlink()  # as if generation had been interrupted before the last track
    assert again.missing() == ["synth-0001"]
    assert again.load("synth-0001").tobytes() == first
    assert calls == [1]
    assert files[0].stat().st_mtime_ns == mtimes[0]


def test_damaged_cache_file_is_regenerated(fresh_cache) -> None:
    corpus = SynthCorpus(n_tracks=1, min_duration_s=30.0, max_duration_s=30.0, progress=False)
    good = corpus.load("synth-0000").tobytes()
    corpus.track_path("synth-0000").write_bytes(b"not an npy file")
    assert corpus.load("synth-0000").tobytes() == good


def test_identity_and_cache_follow_the_generator(fresh_cache) -> None:
    base = SynthCorpus(**SMALL)
    ident = base.identity()
    assert ident["corpus"] == "synth"
    assert ident["generator"]["generator_version"] == GENERATOR_VERSION
    assert ident == SynthCorpus(**SMALL).identity()
    changes = ({"seed": 1}, {"max_duration_s": 40.0}, {"n_tracks": 5}, {"protocol": Protocol(sample_rate=16000)})
    for change in changes:
        other = SynthCorpus(**{**SMALL, **change})
        assert other.identity() != ident
    assert SynthCorpus(**{**SMALL, "seed": 1}).cache_path != base.cache_path
    assert SynthCorpus(**{**SMALL, "n_tracks": 2}).cache_path == base.cache_path  # prefix shares files
    assert SynthCorpus(**SMALL, protocol=Protocol(sample_rate=16000)).cache_path != base.cache_path
    assert os.environ[CACHE_ENV] in str(base.cache_path)


# ------------------------------------------------------------------ arguments

@pytest.mark.parametrize("kwargs, name", [
    ({"n_tracks": 0}, "n_tracks"),
    ({"n_tracks": 10_001}, "n_tracks"),
    ({"n_tracks": 2.5}, "n_tracks"),
    ({"min_duration_s": 0.5}, "min_duration_s"),
    ({"min_duration_s": 50.0, "max_duration_s": 40.0}, "max_duration_s"),
    ({"max_duration_s": 601.0}, "max_duration_s"),
    ({"min_duration_s": float("nan")}, "min_duration_s"),
    ({"seed": -1}, "seed"),
    ({"seed": "0"}, "seed"),
    ({"progress": "yes"}, "progress"),
    ({"protocol": 8000}, "protocol"),
    ({"split_fractions": {"train": 0.5}}, "split"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name, fresh_cache) -> None:
    with pytest.raises(ValueError, match=name):
        SynthCorpus(**kwargs)


def test_bad_generate_and_render_arguments(fresh_cache) -> None:
    with pytest.raises(ValueError, match="duration_s"):
        generate_track(0, 0, 0.0, SR)
    with pytest.raises(ValueError, match="sample_rate"):
        generate_track(0, 0, 30.0, 100)
    with pytest.raises(ValueError, match="instrument"):
        render_note("theremin", 60, 1.0, SR)
    with pytest.raises(ValueError, match="workers"):
        SynthCorpus(n_tracks=1, min_duration_s=30.0, max_duration_s=30.0, progress=False).ensure_cached(workers=0)
