"""Helpers the test modules share: small synthetic audio and files, and small run settings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bench.run.config import TimingConfig
from datasets.audio_io import resample
from datasets.queries.queryset import QuerySetConfig

SR = 8000

QUERIES = QuerySetConfig(durations=(1.0, 2.0), snrs=(None, 5.0), reverbs=(None, 0.3), per_cell=6, seed=1)
TIMING = TimingConfig(warmup=2, repeats=1, latency_queries=12, batch_repeats=1)


TINY = {
    "run": {"corpus": "synth", "synth_tracks": 10, "encoder": "synth-default", "hop_s": 0.25,
            "queries": {"durations": [1, 2], "snrs": ["clean", 0], "reverbs": ["none"], "per_cell": 4, "seed": 0},
            "db_splits": ["test"], "train_pairs": 300,
            "timing": {"threads": 1, "warmup": 2, "repeats": 1, "latency_queries": 8, "batch_repeats": 1},
            "grids": {"flowhash": {"build": [{"K": 8, "n_blocks": 2, "epochs": 2, "max_steps": 20}],
                                   "query": [{"n_probes": 1}, {"n_probes": 8}]},
                      "lsh-directed": {"build": [{"K": 8, "L": 1, "center": True}],
                                       "query": [{"n_probes": 1}, {"n_probes": 8}]}}},
    "sizes": ["base", 2500, "max"],
    "methods": ["flowhash", "lsh-directed"],
    "distractors": {"real": False, "fill": True},
    "workers": 1,
}


def write_rirs(root: Path) -> None:
    """Four exponentially decaying noise RIRs: two near RT60 0.3 s, two near 0.6 s."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i, rt60 in enumerate((0.3, 0.3, 0.6, 0.6)):
        t = np.arange(int(1.2 * rt60 * 8000)) / 8000
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * 0.3
        rir[0] = 1.0
        sf.write(root / f"room{i}.wav", rir.astype(np.float32), 8000, subtype="FLOAT")


def decaying_noise(rt60: float, sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise under an exponential envelope whose energy falls 60 dB in ``rt60`` s."""
    t = np.arange(int(seconds * sr)) / sr
    return np.random.default_rng(seed).standard_normal(t.size) * 10 ** (-3 * t / rt60)


def music_like(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A random-ish music-like signal: notes with harmonics and envelopes, drum hits, noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    out = np.zeros(n, np.float64)
    t = 0.0
    while t < seconds:
        dur = rng.uniform(0.12, 0.6)
        for _ in range(rng.integers(1, 4)):  # a chord of 1-3 notes
            f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            m = int(dur * sr * 1.5)
            start = int(t * sr)
            tt = np.arange(m) / sr
            env = np.exp(-tt * rng.uniform(2, 8)) * np.minimum(1.0, tt / 0.01)
            note = sum((0.6 ** h) * np.sin(2 * np.pi * f0 * (h + 1) * tt + rng.uniform(0, 6.3))
                       for h in range(5) if f0 * (h + 1) < sr / 2)
            seg = out[start:start + m]
            seg += (note * env)[:seg.size] * rng.uniform(0.1, 0.3)
        if rng.random() < 0.4:  # a drum hit
            m = int(0.08 * sr)
            start = int(t * sr)
            seg = out[start:start + m]
            seg += (rng.standard_normal(m) * np.exp(-np.arange(m) / (0.015 * sr)))[:seg.size] * 0.3
        t += dur
    out += rng.standard_normal(n) * 0.003
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def ambience(seconds: float, seed: int) -> np.ndarray:
    """Noise-like test ambience: a faint bed with random chirps and noise bursts, ~8 a second."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    out = 0.02 * rng.standard_normal(n)
    t = 0.0
    while t < seconds:
        m, s = int(rng.uniform(0.05, 0.3) * SR), int(t * SR)
        tt = np.arange(m) / SR
        if rng.random() < 0.5:
            ev = np.sin(2 * np.pi * (rng.uniform(300, 3000) * tt + rng.uniform(-800, 800) * tt**2))
        else:
            ev = rng.standard_normal(m)
        seg = out[s:s + m]
        seg += (ev * np.hanning(m) * rng.uniform(0.1, 0.5))[:seg.size]
        t += rng.exponential(0.12)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, sr: int = SR, fmt: str = "OGG") -> None:
    """Write ``audio`` (at ``SR``) to ``path``, resampled to ``sr``, as Ogg Vorbis or ``fmt``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sr != SR:
        audio = resample(audio, SR, sr)
    if fmt == "OGG":
        sf.write(path, audio, sr, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, audio, sr, format=fmt)
