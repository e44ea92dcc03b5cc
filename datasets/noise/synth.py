"""Synthetic noise from seeds (the embedded default): generators and :class:`SynthNoiseBank`.

Kinds: ``white``, ``pink`` (-3 dB/octave), ``brown`` (-6 dB/octave), ``babble``
(overlapping formant-filtered talkers with syllabic 3-6 Hz modulation and pauses, speech-shaped
long-term spectrum), ``clatter`` (impulsive clicks, knocks and dish-like clinks) and ``hum``
(50 or 60 Hz mains with harmonics and a little broadband noise). Each clip is a pure function
of (GENERATOR_VERSION, seed, kind, index, clip length, sample rate) and is cached on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from datasets.cache import atomic_save_npy, cache_dir, stable_hash
from datasets.protocol import Protocol

from .bank import DEFAULT_SPLIT_FRACTIONS, GENERATOR_VERSION, NoiseBank, NoiseBankError, NoiseClip, _rms_normalise

KINDS: tuple[str, ...] = ("white", "pink", "brown", "babble", "clatter", "hum")


# --------------------------------------------------------------------------- generators


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, gain: Callable[[np.ndarray], np.ndarray]
                  ) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(f)`` (shaped in the frequency domain).

    The result is circular: the clip loops without a seam.
    """
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    g = np.asarray(gain(f), dtype=np.float64)
    g[0] = 0.0
    return np.fft.irfft(spec * g, n)


def _power_law(exponent: float, f_lo: float) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude gain for a 1/f**exponent power spectrum, flat below ``f_lo`` (no DC drift)."""
    return lambda f: np.maximum(f, f_lo) ** (-exponent / 2.0)


def gen_white(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """White Gaussian noise: flat spectrum."""
    return rng.standard_normal(n)


def gen_pink(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Pink noise: power ~ 1/f (-3 dB/octave), flat below 10 Hz."""
    return _shaped_noise(rng, n, sr, _power_law(1.0, 10.0))


def gen_brown(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Brown (red) noise: power ~ 1/f^2 (-6 dB/octave), flat below 20 Hz."""
    return _shaped_noise(rng, n, sr, _power_law(2.0, 20.0))


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator (a formant) with unit gain at its centre frequency."""
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    z = np.exp(1j * theta)
    gain = abs(a[0] + a[1] / z + a[2] / z**2)
    return np.array([gain]), a


def _ltass_gain(f: np.ndarray) -> np.ndarray:
    """Speech-like long-term spectrum: high-pass at 100 Hz, flat to ~500 Hz, -6 dB/octave above."""
    hp = f**2 / (f**2 + 100.0**2)
    lp = 1.0 / np.sqrt(1.0 + (f / 500.0) ** 2)
    return hp * lp


def _talker(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One talker: phrases of syllables (3-6 Hz) separated by pauses, formant-filtered sources."""
    from scipy.signal import lfilter

    out = np.zeros(n)
    f0_base = rng.uniform(90.0, 240.0)
    nyq_cap = 0.45 * sr
    pos = int(rng.integers(0, sr))  # talkers start at different times
    while pos < n:
        rate = rng.uniform(3.0, 6.0)  # syllables per second
        for _ in range(int(rng.integers(3, 13))):
            length = int(sr / rate * rng.uniform(0.75, 1.25))
            if pos >= n:
                break
            t = np.arange(length) / sr
            if rng.random() < 0.8:  # voiced: glottal pulse train with a pitch glide, plus breath
                f0 = f0_base * rng.uniform(0.85, 1.15) * (1 + rng.uniform(-0.15, 0.15) * t / t[-1])
                phase = np.cumsum(f0 / sr) + rng.random()
                src = np.diff(np.floor(phase), prepend=np.floor(phase[0])) * np.sqrt(sr / f0_base)
                src += 0.15 * rng.standard_normal(length)
                formants = [(rng.uniform(300, 850), rng.uniform(60, 120)),
                            (rng.uniform(850, 2300), rng.uniform(80, 160)),
                            (rng.uniform(2300, 3200), rng.uniform(120, 250))]
            else:  # unvoiced (fricative-like): noise through higher resonances, quieter
                src = 0.5 * rng.standard_normal(length)
                formants = [(rng.uniform(1500, 3000), rng.uniform(300, 700))]
            seg = src
            for freq, bw in formants:
                if freq < nyq_cap:
                    b, a = _resonator(freq, bw, sr)
                    seg = lfilter(b, a, seg)
            # syllable envelope: fast rise, slower fall
            u = np.linspace(0.0, 1.0, length)
            env = np.sin(np.pi * u ** 0.6) ** 2
            seg = seg * env
            rms = np.sqrt(np.mean(seg**2)) or 1.0
            seg = seg / rms * rng.uniform(0.4, 1.0)
            end = min(n, pos + length)
            out[pos:end] += seg[: end - pos]
            pos += length
        pos += int(rng.uniform(0.15, 0.8) * sr)  # pause between phrases
    return out


def gen_babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Babble: 3-6 overlapping synthetic talkers at different levels, speech-shaped overall."""
    mix = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        mix += rng.uniform(0.5, 1.0) * _talker(rng, n, sr)
    spec = np.fft.rfft(mix)
    return np.fft.irfft(spec * _ltass_gain(np.fft.rfftfreq(n, 1.0 / sr)), n)


def _damped_partials(rng: np.random.Generator, sr: int, f_range: tuple[float, float],
                     tau_range: tuple[float, float], k_range: tuple[int, int]) -> np.ndarray:
    """A sum of exponentially decaying sinusoids: a struck object (knock, clink)."""
    tau_max = tau_range[1]
    t = np.arange(int(6 * tau_max * sr) + 1) / sr
    out = np.zeros(t.size)
    hi = min(f_range[1], 0.47 * sr)
    for _ in range(int(rng.integers(*k_range))):
        f = rng.uniform(f_range[0], hi)
        tau = rng.uniform(*tau_range)
        out += rng.uniform(0.3, 1.0) * np.exp(-t / tau) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def gen_clatter(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Clatter: clusters of decaying clicks, knocks and dish-like clinks over a faint floor."""
    out = np.zeros(n)
    t_cluster = 0.0
    duration = n / sr
    while True:
        t_cluster += rng.exponential(1.0 / rng.uniform(0.5, 1.5))  # clusters ~ 1 per second
        if t_cluster >= duration:
            break
        for _ in range(int(rng.integers(1, 7))):
            start = int((t_cluster + rng.exponential(0.08)) * sr)
            if start >= n:
                continue
            kind = rng.choice(3, p=[0.35, 0.4, 0.25])
            if kind == 0:  # click: a very short decaying broadband burst
                tau = rng.uniform(0.0005, 0.003)
                length = int(8 * tau * sr) + 2
                ev = rng.standard_normal(length) * np.exp(-np.arange(length) / (tau * sr))
                if rng.random() < 0.5:
                    ev = np.diff(ev, prepend=0.0)  # brighter
            elif kind == 1:  # clink: ringing high partials (plates, glasses, cutlery)
                ev = _damped_partials(rng, sr, (800.0, 3800.0), (0.01, 0.12), (2, 6))
            else:  # knock: low damped partials plus a dull noise thump
                ev = _damped_partials(rng, sr, (80.0, 400.0), (0.005, 0.04), (1, 4))
                thump = rng.standard_normal(int(0.02 * sr)) * np.exp(-np.arange(int(0.02 * sr)) / (0.004 * sr))
                ev[: thump.size] += 0.5 * np.convolve(thump, np.ones(4) / 4, mode="same")
            ev = ev / (np.max(np.abs(ev)) or 1.0) * 10 ** (rng.uniform(-30.0, 0.0) / 20.0)
            end = min(n, start + ev.size)
            out[start:end] += ev[: end - start]
    floor = gen_pink(rng, n, sr)
    out += floor / np.sqrt(np.mean(floor**2)) * 10 ** (-50.0 / 20.0)
    return out


def hum_frequency(index: int) -> int:
    """Mains frequency of hum clip ``index``: 50 Hz for even indices, 60 Hz for odd ones."""
    return 50 if index % 2 == 0 else 60


def gen_hum(rng: np.random.Generator, n: int, sr: int, mains_hz: float = 50.0) -> np.ndarray:
    """Mains hum: the fundamental and harmonics (a strong second, as in transformer hum), a slow
    wobble of pitch and level, and broadband pink noise 30 dB down."""
    t = np.arange(n) / sr
    wobble = 1.0 + 2e-4 * np.sin(2 * np.pi * rng.uniform(0.02, 0.1) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * mains_hz * np.cumsum(wobble) / sr
    out = np.zeros(n)
    k_max = int(min(0.45 * sr, 2000.0) // mains_hz)
    for k in range(1, k_max + 1):
        amp = rng.uniform(0.3, 1.0) / k**0.8
        if k == 2:
            amp *= rng.uniform(1.5, 3.0)
        out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    out *= 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    out /= np.sqrt(np.mean(out**2))
    broadband = gen_pink(rng, n, sr)
    return out + broadband / np.sqrt(np.mean(broadband**2)) * 10 ** (-30.0 / 20.0)


def synth_noise(kind: str, index: int, seed: int = 0, clip_s: float = 30.0, sample_rate: int = 8000
                ) -> np.ndarray:
    """One synthetic noise clip: float32, unit RMS, a pure function of its arguments."""
    if kind not in KINDS:
        raise NoiseBankError(f"unknown noise kind {kind!r}; allowed: {list(KINDS)}")
    n = int(round(clip_s * sample_rate))
    if n < sample_rate // 10:
        raise ValueError(f"clip_s={clip_s}: need at least 0.1 s")
    key = stable_hash({"v": GENERATOR_VERSION, "seed": int(seed), "kind": kind, "index": int(index),
                       "clip_s": float(clip_s), "sr": int(sample_rate)})
    rng = np.random.default_rng(int(key, 16))
    if kind == "hum":
        x = gen_hum(rng, n, sample_rate, hum_frequency(index))
    else:
        x = {"white": gen_white, "pink": gen_pink, "brown": gen_brown, "babble": gen_babble,
             "clatter": gen_clatter}[kind](rng, n, sample_rate)
    return _rms_normalise(x)


class SynthNoiseBank(NoiseBank):
    """Synthetic noise: ``n_per_kind`` clips of ``clip_s`` seconds for each kind, from ``seed``.

    Ids look like 'synth-noise/pink-03'. Clips are generated on first load and cached on disk
    under ``cache_dir("noise", <hash of identity>)``.
    """

    name = "synth"

    def __init__(self, protocol: Protocol = Protocol(), n_per_kind: int = 8, clip_s: float = 30.0,
                 seed: int = 0, kinds: Sequence[str] = KINDS,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> None:
        super().__init__(protocol, split_fractions)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise NoiseBankError(f"kinds={list(kinds)}: allowed a non-empty subset of {list(KINDS)}")
        if n_per_kind < 1:
            raise ValueError(f"n_per_kind={n_per_kind}: need >= 1")
        if not 0.1 <= clip_s <= 600:
            raise ValueError(f"clip_s={clip_s}: allowed 0.1..600 s")
        self.noise_kinds = tuple(k for k in KINDS if k in kinds)
        self.n_per_kind = int(n_per_kind)
        self.clip_s = float(clip_s)
        self.seed = int(seed)
        self._set_clips((self.noise_id(k, i), k, self.clip_s)
                        for k in self.noise_kinds for i in range(self.n_per_kind))
        self._dir: Path | None = None

    @staticmethod
    def noise_id(kind: str, index: int) -> str:
        """Id of clip ``index`` of a kind, e.g. 'synth-noise/pink-03'."""
        return f"synth-noise/{kind}-{index:02d}"

    def identity(self) -> dict:
        """Generator version, protocol rate, kinds, clips per kind, clip length, seed and splits."""
        return {"bank": "synth-noise", "generator_version": GENERATOR_VERSION,
                "sample_rate": self.protocol.sample_rate, "kinds": list(self.noise_kinds),
                "n_per_kind": self.n_per_kind, "clip_s": self.clip_s, "seed": self.seed,
                "splits": list(self.split_fractions)}

    @property
    def cache_path(self) -> Path:
        """The folder this bank's clips are cached in."""
        if self._dir is None:
            self._dir = cache_dir("noise", stable_hash(self.identity()))
        return self._dir

    def _read(self, clip: NoiseClip) -> np.ndarray:
        name = clip.noise_id.split("/", 1)[1]
        path = self.cache_path / f"{name}.npy"
        if path.exists():
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                pass  # damaged: generate it again
        index = int(name.rsplit("-", 1)[1])
        audio = synth_noise(clip.kind, index, self.seed, self.clip_s, self.protocol.sample_rate)
        atomic_save_npy(path, audio)
        return audio
