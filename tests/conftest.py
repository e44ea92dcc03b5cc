"""Shared fixtures: an isolated cache and small audio files written by the tests themselves."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own cache folder, so nothing leaks into ~/.cache or between tests.

    The folder goes when the test ends: the suite's caches add up to gigabytes, and a CI
    machine's disk may be small.
    """
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def tone_track(seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A music-like test signal: random enveloped tones, different for every seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    note = int(0.25 * sample_rate)
    for k in range(0, n - note, note):
        f = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        env = np.exp(-np.arange(note) / (0.08 * sample_rate))
        seg = sum(np.sin(2 * np.pi * f * h * t[k:k + note]) / h for h in (1, 2, 3))
        out[k:k + note] += env * seg
    out += 0.01 * rng.standard_normal(n)
    return (0.8 * out / np.max(np.abs(out))).astype(np.float32)


def write_tracks(root: Path, specs: list[tuple[str, float, int, str]]) -> None:
    """Write (relative path, seconds, sample rate, soundfile format) tracks under ``root``."""
    for i, (rel, seconds, sr, fmt) in enumerate(specs):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = tone_track(i, seconds, sr)
        if fmt == "stereo-wav":
            sf.write(path, np.stack([audio, 0.5 * audio], axis=1), sr)
        else:
            sf.write(path, audio, sr, format=fmt)


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Whatever a test registers (plugin files, entry points, their modules) is gone afterwards."""
    from methods import registry

    state = registry.snapshot()
    yield
    registry.restore(state)

