"""Degradation: exact SNR, timing-preserving reverb, condition parsing."""
from __future__ import annotations

import numpy as np
import pytest

from datasets.queries.conditions import parse_duration, parse_reverb, parse_snr, reverb_label, snr_label
from datasets.queries.degrade import degrade, measured_snr_db, mix_at_snr, noise_excerpt
from tests.conftest import tone_track


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0, 20.0, 37.5])
def test_mix_hits_the_target_snr(snr: float) -> None:
    rng = np.random.default_rng(1)
    signal = tone_track(3, 2.0, 8000)
    noise = (rng.standard_normal(16000) * rng.uniform(0.01, 3)).astype(np.float32)
    noisy = mix_at_snr(signal, noise, snr)
    assert abs(measured_snr_db(signal, noisy) - snr) < 0.01


def test_reverb_keeps_timing_and_uses_preceding_audio() -> None:
    track = tone_track(0, 6.0, 8000)
    rir = np.zeros(2000, np.float32)
    rir[0], rir[800] = 1.0, 0.5
    wet, _ = degrade(track, 8000, 4000, rir)
    start = 8000
    expected = track[start:start + 4000] + 0.5 * track[start - 800:start + 3200]
    np.testing.assert_allclose(wet, expected, atol=1e-4)
    at_zero, _ = degrade(track, 0, 4000, rir)  # nothing before the start: tail starts empty
    np.testing.assert_allclose(at_zero[:800], track[:800], atol=1e-5)


def test_degrade_reference_and_noise_wrap() -> None:
    track = tone_track(1, 3.0, 8000)
    noise = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    out, ref = degrade(track, 100, 8000, None, noise, 900, 10.0)
    np.testing.assert_array_equal(ref, track[100:8100])
    assert abs(measured_snr_db(ref, out) - 10.0) < 0.01
    np.testing.assert_array_equal(noise_excerpt(noise, 900, 200)[100:], noise[:100])
    with pytest.raises(ValueError, match="outside the track"):
        degrade(track, 20000, 8000)
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(np.zeros(100, np.float32), noise[:100], 5.0)


def test_condition_parsing_names_value_and_allowed_range() -> None:
    assert parse_snr("clean") is None and parse_snr("-5") == -5.0
    assert parse_reverb("none") is None and parse_reverb("0.6") == 0.6
    assert parse_duration("2") == 2.0
    assert snr_label(None) == "clean" and snr_label(20.0) == "20" and reverb_label(0.3) == "0.3"
    with pytest.raises(ValueError, match=r"SNR 99 dB is out of range; allowed: 'clean' or .*-20, 60"):
        parse_snr("99")
    with pytest.raises(ValueError, match="SNR 'loud' is not a number"):
        parse_snr("loud")
    with pytest.raises(ValueError, match=r"query duration 0.5 s is out of range.*\[1, 60\]"):
        parse_duration("0.5")
    with pytest.raises(ValueError, match=r"reverb RT60 5 s is out of range"):
        parse_reverb("5")
