"""Query transforms: stretch, pitch and speed on tones; codec and phone channels; label parsing."""
from __future__ import annotations

import numpy as np
import pytest

from datasets.queries.transforms import (
    NONE,
    _encode,
    apply_transform,
    is_source_transform,
    library_versions,
    parse_transform,
    source_samples,
)

SR = 8000
CHANNELS = ["mp3:32", "mp3:64", "opus:32", "opus:64", "phone:gsm", "phone:ulaw"]


def tone(freq: float, seconds: float = 4.0, sample_rate: int = SR) -> np.ndarray:
    """A sine at half full scale."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chords(seconds: float = 4.0, sample_rate: int = SR) -> np.ndarray:
    """A music-like signal inside the telephone band: changing harmonic notes of 400-1000 Hz."""
    rng = np.random.default_rng(0)
    note = int(0.25 * sample_rate)
    t = np.arange(note) / sample_rate
    env = np.exp(-t / 0.1)
    notes = []
    for _ in range(int(seconds * sample_rate) // note):
        f = 400.0 * 2 ** (rng.integers(0, 16) / 12)
        notes.append(env * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)))
    out = np.concatenate(notes)
    return (0.7 * out / np.max(np.abs(out))).astype(np.float32)


def dominant_hz(audio: np.ndarray, sample_rate: int = SR) -> float:
    """Frequency of the strongest spectral peak: Hann window, parabolic interpolation on log magnitude."""
    mag = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1:k + 2] + 1e-20)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sample_rate / len(audio)


def lag(reference: np.ndarray, audio: np.ndarray, max_lag: int = 2000) -> int:
    """The shift of ``audio`` against ``reference`` at the cross-correlation peak, in samples."""
    corr = np.correlate(np.pad(audio, max_lag), reference, "valid")
    return int(np.argmax(corr)) - max_lag


def level_db(audio: np.ndarray, reference: np.ndarray) -> float:
    """Energy of ``audio`` against ``reference``, in dB."""
    return 10 * np.log10(np.sum(np.square(audio, dtype=np.float64)) / np.sum(np.square(reference, dtype=np.float64)))


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_stretch_keeps_pitch_and_scales_length(factor: float) -> None:
    x = tone(440.0)
    y = apply_transform(f"stretch:{factor}", x, SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / (len(x) / factor) - 1) < 0.02
    assert abs(dominant_hz(y) / 440.0 - 1) < 0.02


@pytest.mark.parametrize("semitones", [2, -1])
def test_pitch_moves_by_semitones_and_keeps_length(semitones: int) -> None:
    x = tone(440.0)
    y = apply_transform(f"pitch:{semitones:+d}", x, SR)
    assert abs(len(y) / len(x) - 1) < 0.01
    assert abs(dominant_hz(y) / 440.0 / 2 ** (semitones / 12) - 1) < 0.01


def test_speed_changes_length_and_frequency_together() -> None:
    x = tone(440.0)
    y = apply_transform("speed:1.05", x, SR)
    assert abs(len(y) / (len(x) / 1.05) - 1) < 0.01
    assert abs(dominant_hz(y) / (440.0 * 1.05) - 1) < 0.005


@pytest.mark.parametrize("label", ["none", "stretch:0.8", "stretch:1.05", "pitch:1", "speed:0.98", "speed:1.05",
                                   "mp3:32", "phone:gsm"])
def test_source_samples_and_n_out_give_exact_lengths(label: str) -> None:
    n = 12345
    x = tone(440.0, seconds=3.0)[:source_samples(label, n)]
    assert len(apply_transform(label, x, SR, n_out=n)) == n
    if label.startswith(("stretch", "speed")):
        assert len(apply_transform(label, x, SR)) >= n  # enough source for n samples without padding
    assert len(apply_transform(label, x[:100], SR, n_out=n)) == n  # padded


@pytest.mark.parametrize("label", CHANNELS)
def test_channels_keep_length_and_alignment_and_degrade(label: str) -> None:
    x = chords()
    y = apply_transform(label, x, SR)
    assert y.dtype == np.float32 and len(y) == len(x)
    assert np.mean(np.square(y - x)) > 1e-8
    assert np.corrcoef(x, y)[0, 1] > 0.5
    assert lag(x, y) == 0
    np.testing.assert_array_equal(apply_transform(label, x, SR), y)  # deterministic


def test_mp3_without_gapless_header_is_realigned() -> None:
    x = chords()  # at 16 kbps the frames are too small for LAME's gapless header: the delay is removed here
    y = apply_transform("mp3:16", x, SR)
    assert len(y) == len(x) and lag(x, y) == 0 and np.corrcoef(x, y)[0, 1] > 0.5


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize(("codec", "kbps"), [("mp3", 32), ("mp3", 64), ("opus", 32), ("opus", 64)])
def test_codec_bitrate_is_the_requested_one(codec: str, kbps: int, sample_rate: int) -> None:
    x = chords(seconds=10.0, sample_rate=sample_rate)
    achieved_kbps = len(_encode(x, sample_rate, codec, kbps)) * 8 / 10.0 / 1000
    assert abs(achieved_kbps / kbps - 1) < 0.15


@pytest.mark.parametrize(("label", "sample_rate", "match"), [
    ("mp3:128", 8000, "mp3:128 is not possible at 8000 Hz"),
    ("mp3:32", 7000, "mp3 cannot encode at 7000 Hz"),
    ("opus:32", 44100, "opus cannot encode at 44100 Hz; allowed sample rates: 8000, 12000"),
    ("phone:ulaw", 6000, "phone:ulaw needs a sample rate above 6800 Hz.*got 6000 Hz"),
    ("phone:gsm", 6000, "phone:gsm needs a sample rate above 6800 Hz"),
])
def test_channels_reject_sample_rates_they_cannot_take(label: str, sample_rate: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        apply_transform(label, tone(440.0, 1.0, sample_rate), sample_rate)


@pytest.mark.parametrize(("label", "min_stop_db"), [("phone:ulaw", 30.0), ("phone:gsm", 30.0)])
def test_phone_keeps_only_the_telephone_band(label: str, min_stop_db: float) -> None:
    passband = tone(1000.0)
    assert abs(level_db(apply_transform(label, passband, SR), passband)) < 3.0
    for freq in (100.0, 3800.0):
        stop = tone(freq)
        assert level_db(apply_transform(label, stop, SR), passband) < -min_stop_db


def test_parse_gives_canonical_labels() -> None:
    assert parse_transform(None) == NONE and parse_transform(" None ") == "none"
    assert parse_transform("Pitch:+1") == "pitch:1" and parse_transform("pitch: -2") == "pitch:-2"
    assert parse_transform("stretch:1.050") == "stretch:1.05" and parse_transform("speed:0.98") == "speed:0.98"
    assert parse_transform("MP3:32") == "mp3:32" and parse_transform("opus:64.0") == "opus:64"
    assert parse_transform(" phone:GSM ") == "phone:gsm" and parse_transform("phone:ulaw") == "phone:ulaw"
    assert [is_source_transform(s) for s in ("stretch:1.1", "pitch:1", "speed:0.9")] == [True] * 3
    assert not any(is_source_transform(s) for s in ("none", "mp3:32", "opus:64", "phone:gsm"))
    assert source_samples("stretch:1.25", 800) == 1000 and source_samples("pitch:1", 800) == 800


@pytest.mark.parametrize("value", ["stretch:1", "stretch:3", "pitch:0", "pitch:13", "speed:0.4", "mp3:320",
                                   "mp3:33", "opus:5", "opus:32.5", "phone:fax", "warp:2", "stretch:nan", "pitch"])
def test_parse_rejects_and_names_the_value(value: str) -> None:
    allowed = r"allowed: 'none', 'stretch:.*'phone:gsm', 'phone:ulaw'"
    with pytest.raises(ValueError, match=rf"transform '{value}' is not allowed; {allowed}"):
        parse_transform(value)


def test_library_versions_are_recorded() -> None:
    versions = library_versions()
    assert set(versions) == {"pedalboard", "soundfile", "libsndfile", "torchaudio", "scipy"}
    assert all(isinstance(v, str) and v for v in versions.values())
