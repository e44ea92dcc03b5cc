"""Background-noise banks: synthetic noise from seeds (the embedded default), real ambience from
Debian game packages (:mod:`datasets.debian_noise`), a folder of recordings, or several combined.

A bank is a list of clips, each with a stable id, a kind and a train/val/test split (stratified
by kind, so every kind with two or more clips has test clips), and a loader that returns mono
float32 audio at the protocol rate with unit RMS (the degrader scales it to the SNR it wants).

Synthetic kinds: ``white``, ``pink`` (-3 dB/octave), ``brown`` (-6 dB/octave), ``babble``
(overlapping formant-filtered talkers with syllabic 3-6 Hz modulation and pauses, speech-shaped
long-term spectrum), ``clatter`` (impulsive clicks, knocks and dish-like clinks) and ``hum``
(50 or 60 Hz mains with harmonics and a little broadband noise). Each clip is a pure function
of (GENERATOR_VERSION, seed, kind, index, clip length, sample rate) and is cached on disk.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from datasets.audio_io import AudioReadError, audio_info, find_audio_files, read_audio, warn_skip
from datasets.cache import atomic_save_npy, cache_dir, stable_hash
from datasets.corpora.corpus import Skipped
from datasets.protocol import Protocol
from datasets.splits import SPLITS, stratified_splits

GENERATOR_VERSION = 1
"""Bump when a generator changes what a seed produces (it is part of every cache key)."""

KINDS: tuple[str, ...] = ("white", "pink", "brown", "babble", "clatter", "hum")
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (0.6, 0.0, 0.4)
MEMORY_CACHE_CLIPS = 64  # decoded clips kept in memory per bank (30 s at 8 kHz is ~1 MB)


class NoiseBankError(ValueError):
    """A noise bank cannot be opened (bad spec, no usable files, unknown kind)."""


@dataclass(frozen=True)
class NoiseClip:
    """One noise clip of a bank."""

    noise_id: str
    kind: str
    duration_s: float
    split: str


# --------------------------------------------------------------------------- generators


def _rms_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x**2)))
    if rms <= 0 or not np.isfinite(rms):
        raise ValueError("cannot RMS-normalise a silent or non-finite signal")
    return (x / rms).astype(np.float32)


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


# --------------------------------------------------------------------------- banks


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")


class NoiseBank:
    """Base class: subclasses register clips with ``_set_clips`` and implement ``_read``."""

    name = "noise"

    def __init__(self, protocol: Protocol, split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS
                 ) -> None:
        self.protocol = protocol
        self.split_fractions = tuple(float(f) for f in split_fractions)
        self._clips: dict[str, NoiseClip] = {}
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.skipped: list[Skipped] = []

    def _set_clips(self, entries: Iterable[tuple[str, str, float]],
                   groups: Mapping[str, str] | None = None) -> None:
        """Register (noise_id, kind, duration_s) entries and split them stratified by kind.

        ``groups`` maps ids to a group name: clips of one group (recordings that share
        audio) always land in the same split. A group is split as one item, stratified by
        the kind of its longest clip; ids not in ``groups`` form a group of their own.
        """
        entries = list(entries)
        if not groups:
            splits = stratified_splits([(i, k) for i, k, _ in entries], self.split_fractions, salt="noise")
        else:
            group_of = {i: groups.get(i, i) for i, _, _ in entries}
            lead: dict[str, tuple[float, str, str]] = {}  # group -> (-duration, id, kind) of its longest clip
            for i, k, d in entries:
                g, cand = group_of[i], (-float(d), i, k)
                if g not in lead or cand < lead[g]:
                    lead[g] = cand
            by_group = stratified_splits([(g, k) for g, (_, _, k) in sorted(lead.items())],
                                         self.split_fractions, salt="noise")
            splits = {i: by_group[group_of[i]] for i, _, _ in entries}
        self._clips = {i: NoiseClip(i, k, float(d), splits[i]) for i, k, d in entries}

    def clips(self, split: str | None = None) -> list[NoiseClip]:
        """Clips in id order, optionally only those of one split ('train', 'val', 'test')."""
        _check_split(split)
        out = [self._clips[k] for k in sorted(self._clips)]
        return out if split is None else [c for c in out if c.split == split]

    def clip(self, noise_id: str) -> NoiseClip:
        """One clip by id."""
        try:
            return self._clips[noise_id]
        except KeyError:
            raise KeyError(f"noise bank {self.name!r} has no clip {noise_id!r}") from None

    def kinds(self) -> list[str]:
        """The kinds present in the bank, sorted."""
        return sorted({c.kind for c in self._clips.values()})

    def load(self, noise_id: str) -> np.ndarray:
        """Mono float32 audio of one clip at the protocol rate, unit RMS; a fresh copy."""
        clip = self.clip(noise_id)
        audio = self._memory.get(noise_id)
        if audio is None:
            audio = self._read(clip)
            self._memory[noise_id] = audio
            while len(self._memory) > MEMORY_CACHE_CLIPS:
                self._memory.popitem(last=False)
        else:
            self._memory.move_to_end(noise_id)
        return audio.copy()

    def _read(self, clip: NoiseClip) -> np.ndarray:
        raise NotImplementedError

    def source_path(self, noise_id: str) -> Path | None:
        """The file a clip is read from, or None when it has none (synthetic noise)."""
        self.clip(noise_id)
        return None

    def identity(self) -> dict:
        """What defines this bank's content, for cache keys and query-set hashes."""
        raise NotImplementedError


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

    def generate_all(self) -> None:
        """Generate (or check the cache for) every clip now instead of on first load."""
        for clip in self.clips():
            self._read(clip)


class FolderNoiseBank(NoiseBank):
    """Noise recordings from any folder of soundfile-readable audio files.

    Ids are the path relative to ``root`` without extension; the kind is the name of the
    file's parent folder. Unreadable files and files shorter than ``min_duration_s`` are
    skipped with a warning and recorded in ``skipped``. Audio is decoded to mono at the
    protocol rate and scaled to unit RMS on load.
    """

    name = "folder"

    def __init__(self, root: Path | str, protocol: Protocol = Protocol(), min_duration_s: float = 1.0,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> None:
        super().__init__(protocol, split_fractions)
        self.root = Path(root)
        self._paths: dict[str, Path] = {}
        entries = []
        for path in find_audio_files(self.root):
            noise_id = path.relative_to(self.root).with_suffix("").as_posix()
            if noise_id in self._paths:
                self._skip(path, f"duplicate id {noise_id!r} (another file has the same name)")
                continue
            try:
                info = audio_info(path)
            except AudioReadError as exc:
                self._skip(path, str(exc))
                continue
            if info.duration_s < min_duration_s:
                self._skip(path, f"{info.duration_s:.2f} s is shorter than {min_duration_s:.2f} s")
                continue
            self._paths[noise_id] = path
            entries.append((noise_id, path.parent.name, info.duration_s))
        if not entries:
            raise NoiseBankError(f"{self.root}: no usable noise recordings"
                                 + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))
        self._set_clips(entries)

    def _skip(self, path: Path, reason: str) -> None:
        warn_skip(path, reason)
        self.skipped.append(Skipped(str(path), reason))

    def source_path(self, noise_id: str) -> Path:
        """The file a clip is read from."""
        self.clip(noise_id)
        return self._paths[noise_id]

    def identity(self) -> dict:
        """Ids, kinds and lengths of the clips, the protocol rate and the splits."""
        return {"bank": "folder-noise", "generator_version": GENERATOR_VERSION,
                "sample_rate": self.protocol.sample_rate, "splits": list(self.split_fractions),
                "clips": [(c.noise_id, c.kind, round(c.duration_s, 3)) for c in self.clips()]}

    def _read(self, clip: NoiseClip) -> np.ndarray:
        path = self._paths[clip.noise_id]
        audio = read_audio(path, self.protocol.sample_rate)
        try:
            return _rms_normalise(audio)
        except ValueError:
            raise AudioReadError(f"{path}: silent recording, cannot use it as noise") from None


class CombinedNoiseBank(NoiseBank):
    """Several noise banks as one: the union of their clips.

    Each member keeps its own clip ids, kinds and train/val/test splits (nothing is split
    again); ids must be unique across members. The identity is the members' identities.
    """

    def __init__(self, banks: Sequence[NoiseBank]) -> None:
        banks = tuple(banks)
        if len(banks) < 2:
            raise NoiseBankError(f"a combined noise bank needs two or more banks, got {len(banks)}")
        protocols = {b.protocol for b in banks}
        if len(protocols) > 1:
            raise NoiseBankError(f"cannot combine noise banks of different protocols: {sorted(map(str, protocols))}")
        super().__init__(banks[0].protocol, banks[0].split_fractions)
        self.banks = banks
        self.name = "+".join(b.name for b in banks)
        self._owner: dict[str, NoiseBank] = {}
        for bank in banks:
            for clip in bank.clips():
                if clip.noise_id in self._owner:
                    first = self._owner[clip.noise_id].name
                    raise NoiseBankError(f"noise id {clip.noise_id!r} is in both bank {first!r} and bank "
                                         f"{bank.name!r}; a combined bank needs unique ids")
                self._owner[clip.noise_id] = bank
                self._clips[clip.noise_id] = clip
            self.skipped += bank.skipped

    def source_path(self, noise_id: str) -> Path | None:
        """The file a clip is read from, as its member bank says."""
        return self.member(noise_id).source_path(noise_id)

    def member(self, noise_id: str) -> NoiseBank:
        """The member bank a clip comes from."""
        self.clip(noise_id)
        return self._owner[noise_id]

    def _read(self, clip: NoiseClip) -> np.ndarray:
        return self._owner[clip.noise_id]._read(clip)  # this bank's memory cache is the only one

    def identity(self) -> dict:
        """The identities of the members, in order."""
        return {"bank": "combined-noise", "members": [b.identity() for b in self.banks]}


def _open_one(spec: str, protocol: Protocol, **kwargs) -> NoiseBank:
    if spec == "synth":
        return SynthNoiseBank(protocol, **kwargs)
    if spec == "debian":
        from .debian import DebianNoiseBank

        return DebianNoiseBank(protocol, **kwargs)
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        return FolderNoiseBank(path, protocol, **kwargs)
    raise NoiseBankError(f"noise bank spec {spec!r}: expected 'synth', 'debian' or an existing folder of "
                         f"audio files, or several joined by '+' such as 'synth+debian' "
                         f"({path} is not a directory)")


def open_noise_bank(spec: str, protocol: Protocol = Protocol(), **kwargs) -> NoiseBank:
    """A noise bank from a spec.

    ``'synth'``: synthetic noise (:class:`SynthNoiseBank`); ``'debian'``: real ambience from
    Debian game packages (:class:`datasets.debian_noise.DebianNoiseBank`, fetched with apt
    on first use); the path of a folder of recordings (:class:`FolderNoiseBank`; write
    ``./debian`` for a folder named like a bank); or several of these joined by ``'+'``, e.g.
    ``'synth+debian'``: a :class:`CombinedNoiseBank` in which each member keeps its own clips
    and splits. Extra keyword arguments go to the bank's constructor; for a combined spec,
    pass one dict per member, keyed by its part of the spec (``debian={"fetch": False}``).
    """
    if "+" in spec and not Path(spec).expanduser().is_dir():
        parts = spec.split("+")
        if any(not p for p in parts):
            raise NoiseBankError(f"noise bank spec {spec!r}: an empty part between '+' signs")
        if len(set(parts)) != len(parts):
            raise NoiseBankError(f"noise bank spec {spec!r}: a bank is named twice")
        unknown = sorted(set(kwargs) - set(parts))
        if unknown:
            raise NoiseBankError(f"noise bank spec {spec!r}: options {unknown} name no part of the spec; "
                                 f"pass one dict of constructor options per part ({parts})")
        bad = sorted(k for k, v in kwargs.items() if not isinstance(v, Mapping))
        if bad:
            raise NoiseBankError(f"noise bank spec {spec!r}: options for {bad} must be dicts of constructor options")
        return CombinedNoiseBank([_open_one(p, protocol, **dict(kwargs.get(p, {}))) for p in parts])
    return _open_one(spec, protocol, **kwargs)
