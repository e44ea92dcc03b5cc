"""The embedded default corpus ``synth``: music synthesised from a seed, cached on disk.

Each track is a pure function of (corpus seed, track index, duration, sample rate): a tempo,
a key and a set of instruments drawn per track, a chord progression with varied voicings,
a bass line, a melody drawn afresh every bar, and drums from shaped noise and sines. Onsets
and velocities are humanised and drum hits are fresh noise, so no two bars are sample-identical
and every 1 s segment differs from every other. All partials stay below
``BAND_LIMIT * sample_rate``.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from datasets.cache import atomic_save_npy, atomic_write_json, cache_dir, stable_hash
from datasets.progress import tqdm
from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .corpus import Corpus, Track

__all__ = ["SynthCorpus", "generate_track", "render_note", "render_drum", "plan_track", "draw_duration",
           "TrackPlan", "midi_to_hz", "GENERATOR_VERSION", "INSTRUMENT_NAMES", "DRUM_NAMES", "PEAK", "BAND_LIMIT"]

GENERATOR_VERSION = 1  # bump whenever the synthesis changes: it keys the cache and query-set hashes
PEAK = 0.9
BAND_LIMIT = 0.45  # partials at or above this fraction of the sample rate are dropped
MAX_TRACKS = 10_000  # track ids are zero padded to 4 digits
MAX_DURATION_S = 600.0
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
# Chord roots as 0-based scale degrees; triads are built from the track's mode.
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (1, 4, 0, 0), (0, 3, 4, 3),
    (0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 2, 3, 5), (3, 4, 2, 5),
)
CHORD_STYLES: dict[str, tuple[str, ...]] = {
    "pad": ("sustain",), "organ": ("sustain", "stabs"), "pluck": ("arp", "stabs"), "bell": ("arp",),
}
MELODY_INSTRUMENTS = ("lead", "reed", "pluck", "bell", "organ")
DRUM_NAMES = ("kick", "snare", "hihat", "open_hat")
KICK_GROOVES: tuple[tuple[int, ...], ...] = ((0, 8), (0, 10), (0, 6, 8), (0, 7, 10), (0, 3, 8, 11), (0, 8, 9))
BASS_PATTERNS: tuple[tuple[tuple[int, str, int], ...], ...] = (  # (16th step, chord tone, length in steps)
    ((0, "r", 16),),
    ((0, "r", 8), (8, "f", 8)),
    ((0, "r", 4), (4, "r", 4), (8, "f", 4), (12, "o", 4)),
    tuple((s, "f" if s == 14 else "r", 2) for s in range(0, 16, 2)),
    ((0, "r", 3), (3, "r", 3), (6, "f", 2), (8, "r", 4), (12, "f", 2), (14, "o", 2)),
)
SECTION_BARS = 8
_PLAN_STREAM, _SCORE_STREAM, _DURATION_STREAM = 0, 1, 2


# ----------------------------------------------------------------------------- instruments

def _envelope(n_hold: int, n_total: int, attack_s: float, release_s: float, sr: int) -> np.ndarray:
    """Linear attack from 0, hold, linear release after ``n_hold`` samples; continuous throughout."""
    i = np.arange(n_total, dtype=np.float64)
    attack = np.minimum(i / max(attack_s * sr, 1.0), 1.0)
    n_rel = max(release_s * sr, 1.0)
    release = np.clip((n_hold + n_rel - i) / n_rel, 0.0, 1.0)
    return np.minimum(attack, release)


def _harmonic_voice(f0: float, n: int, sr: int, amps: np.ndarray, decay: float = 0.0,
                    decay_per_harmonic: float = 0.0, vibrato: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Sum of harmonics k*f0 with amplitudes ``amps[k-1]``, each decaying at decay + k*decay_per_harmonic.

    Harmonics whose highest instantaneous frequency reaches BAND_LIMIT * sr are dropped. The sum is
    evaluated as a polynomial in one complex phasor (Horner), so each harmonic costs one complex
    multiply-add per sample.
    """
    depth, rate = vibrato
    k = np.arange(1, len(amps) + 1)
    amps = np.where(k * f0 * (1.0 + depth) < BAND_LIMIT * sr, amps, 0.0)
    if not np.any(amps) or n <= 0:
        return np.zeros(max(n, 0))
    amps = amps[: np.flatnonzero(amps)[-1] + 1] / math.sqrt(float(np.sum(amps**2)))
    t = np.arange(n) / sr
    phase = 2.0 * np.pi * f0 * t
    if depth:
        phase += f0 * depth / rate * (1.0 - np.cos(2.0 * np.pi * rate * t))
    w = np.exp(-decay_per_harmonic * t + 1j * phase)
    acc = np.full(n, amps[-1], dtype=np.complex128)
    for a in amps[-2::-1]:
        acc *= w
        acc += a
    acc *= w
    out = acc.imag
    if decay:
        out *= np.exp(-decay * t)
    return out


def _ring_samples(rate: float, sr: int) -> int:
    """Samples until an exponential decay at ``rate`` (1/s) falls 60 dB."""
    return int(math.ceil(math.log(1000.0) / rate * sr))


def _pluck(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Plucked string: 1/k harmonics combed by the pluck position, upper ones dying faster."""
    k = np.arange(1, 31)
    amps = np.abs(np.sin(np.pi * k * 0.18)) / k
    decay, per_k = 1.0 + f0 / 300.0, 0.3 + f0 / 1000.0
    n = min(n_hold + int(0.06 * sr), _ring_samples(decay + per_k, sr))
    return 1.5 * _harmonic_voice(f0, n, sr, amps, decay, per_k) * _envelope(n_hold, n, 0.002, 0.06, sr)


def _organ(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Drawbar organ: sustained harmonics 1, 2, 3, 4, 6, 8 with a 6.3 Hz tremolo."""
    amps = np.array([1.0, 0.75, 0.5, 0.45, 0.0, 0.3, 0.0, 0.25])
    n = n_hold + int(0.05 * sr)
    t = np.arange(n) / sr
    tremolo = 1.0 + 0.12 * np.sin(2.0 * np.pi * 6.3 * t)
    return _harmonic_voice(f0, n, sr, amps) * tremolo * _envelope(n_hold, n, 0.012, 0.05, sr)


def _pad(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """String pad: two soft sawtooth voices detuned +-7 cents, slow attack and release."""
    k = np.arange(1, 17)
    amps = np.exp(-(k - 1) / 5.0) / k
    n = n_hold + int(0.35 * sr)
    detune = 2.0 ** (7.0 / 1200.0)
    voices = _harmonic_voice(f0 * detune, n, sr, amps) + _harmonic_voice(f0 / detune, n, sr, amps)
    return 0.7 * voices * _envelope(n_hold, n, 0.25, 0.35, sr)


def _bass(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Electric bass: strong fundamental, few harmonics that darken as the note decays."""
    amps = np.array([1.0, 0.55, 0.3, 0.2, 0.12, 0.08, 0.05])
    n = n_hold + int(0.05 * sr)
    return _harmonic_voice(f0, n, sr, amps, 0.6, 0.8) * _envelope(n_hold, n, 0.004, 0.05, sr)


def _lead(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Bright sawtooth lead with 5.5 Hz vibrato."""
    k = np.arange(1, 25)
    amps = np.exp(-(k - 1) / 12.0) / k
    n = n_hold + int(0.08 * sr)
    return _harmonic_voice(f0, n, sr, amps, vibrato=(0.006, 5.5)) * _envelope(n_hold, n, 0.012, 0.08, sr)


def _reed(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Clarinet-like reed: odd harmonics dominate, slow breathy attack, light vibrato."""
    k = np.arange(1, 22)
    amps = np.where(k % 2 == 1, 1.0, 0.04) / k
    n = n_hold + int(0.06 * sr)
    return _harmonic_voice(f0, n, sr, amps, vibrato=(0.003, 4.6)) * _envelope(n_hold, n, 0.03, 0.06, sr)


_BELL_RATIOS = np.array([0.56, 0.92, 1.19, 1.71, 2.0, 2.74, 3.0, 3.76, 4.07])
_BELL_AMPS = np.array([1.0, 0.67, 1.0, 1.8, 2.67, 1.67, 1.46, 1.33, 1.33]) / 2.2
_BELL_RATES = math.log(1000.0) / np.array([2.4, 1.8, 1.2, 1.0, 0.75, 0.6, 0.5, 0.4, 0.3])


def _bell(f0: float, n_hold: int, sr: int) -> np.ndarray:
    """Bell (Risset): inharmonic partials, each ringing out for its own time regardless of the hold."""
    ok = f0 * _BELL_RATIOS < BAND_LIMIT * sr
    lengths = [_ring_samples(r, sr) for r in _BELL_RATES]
    out = np.zeros(max([m for m, keep in zip(lengths, ok) if keep], default=0))
    for ratio, amp, rate, m, keep in zip(_BELL_RATIOS, _BELL_AMPS, _BELL_RATES, lengths, ok):
        if keep:
            t = np.arange(m) / sr
            out[:m] += amp * np.exp(-rate * t) * np.sin(2.0 * np.pi * f0 * ratio * t)
    return out * _envelope(len(out), len(out), 0.001, 0.0, sr)


INSTRUMENTS: dict[str, Callable[[float, int, int], np.ndarray]] = {
    "pluck": _pluck, "organ": _organ, "pad": _pad, "bass": _bass,
    "lead": _lead, "reed": _reed, "bell": _bell,
}
INSTRUMENT_NAMES = tuple(INSTRUMENTS)


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def render_note(instrument: str, midi: float, duration_s: float, sample_rate: int,
                velocity: float = 1.0) -> np.ndarray:
    """One note of a pitched instrument held for ``duration_s`` (its release or ring follows)."""
    if instrument not in INSTRUMENTS:
        raise ValueError(f"instrument={instrument!r}: allowed {list(INSTRUMENT_NAMES)}")
    n_hold = max(int(round(duration_s * sample_rate)), 1)
    return velocity * INSTRUMENTS[instrument](midi_to_hz(midi), n_hold, sample_rate)


def render_drum(kind: str, sample_rate: int, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """One drum hit: 'kick' (swept sine), 'snare' (noise and tones), 'hihat' / 'open_hat' (bright noise)."""
    if kind == "kick":
        return velocity * _kick(sample_rate, rng)
    if kind == "snare":
        return velocity * _snare(sample_rate, rng)
    if kind in ("hihat", "open_hat"):
        return velocity * _hat(sample_rate, rng, 0.12 if kind == "open_hat" else 0.018)
    raise ValueError(f"kind={kind!r}: allowed {list(DRUM_NAMES)}")


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sine swept from ~130 Hz down to 45 Hz, plus a short noise click."""
    t = np.arange(int(0.35 * sr)) / sr
    freq = 45.0 + 85.0 * np.exp(-t / 0.035)
    body = np.sin(2.0 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.18)
    body[: int(0.004 * sr)] += 0.3 * rng.standard_normal(int(0.004 * sr))
    return body


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pre-emphasised noise burst over two damped drum-head tones."""
    t = np.arange(int(0.22 * sr)) / sr
    noise = rng.standard_normal(len(t) + 1)
    noise = 0.5 * (noise[1:] - 0.6 * noise[:-1])
    tones = (0.5 * np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
             + 0.3 * np.sin(2 * np.pi * 330.0 * t) * np.exp(-t / 0.03))
    return noise * np.exp(-t / 0.07) + tones


def _hat(sr: int, rng: np.random.Generator, decay_s: float) -> np.ndarray:
    """Noise high-passed by a double first difference, with an exponential decay."""
    n = int(5 * decay_s * sr)
    noise = np.diff(rng.standard_normal(n + 2), n=2) / 2.0
    return noise * np.exp(-np.arange(n) / (decay_s * sr))


_DRUM_GAIN = {"kick": 0.9, "snare": 0.45, "hihat": 0.16, "open_hat": 0.12}
_ROLE_GAIN = {"chords": 0.2, "bass": 0.55, "melody": 0.45}


# ----------------------------------------------------------------------------- track plan

@dataclass(frozen=True)
class TrackPlan:
    """What a track sounds like at a glance: tempo, key and instrument per role (cheap to draw)."""

    tempo_bpm: float
    root: int
    mode: str
    chords: str
    chord_style: str
    melody: str
    bass: str = "bass"

    @property
    def key(self) -> str:
        """Key name, e.g. 'F# minor'."""
        return f"{NOTE_NAMES[self.root]} {self.mode}"

    def meta(self) -> dict[str, str]:
        """Track.meta form: every value a string."""
        instruments = [self.chords, self.bass, self.melody, "kick", "snare", "hihat"]
        return {"tempo_bpm": f"{self.tempo_bpm:.1f}", "key": self.key, "instruments": ",".join(instruments),
                "chords": self.chords, "chord_style": self.chord_style, "melody": self.melody, "bass": self.bass}


def plan_track(seed: int, index: int) -> TrackPlan:
    """The plan of track ``index`` of the corpus with ``seed`` (independent of the corpus size)."""
    rng = np.random.default_rng([seed, index, _PLAN_STREAM])
    tempo = round(float(rng.uniform(72.0, 150.0)), 1)
    root = int(rng.integers(12))
    mode = str(rng.choice(list(MODES)))
    chords = str(rng.choice(list(CHORD_STYLES)))
    style = str(rng.choice(CHORD_STYLES[chords]))
    melody = str(rng.choice([m for m in MELODY_INSTRUMENTS if m != chords]))
    return TrackPlan(tempo, root, mode, chords, style, melody)


def draw_duration(seed: int, index: int, min_duration_s: float, max_duration_s: float, sample_rate: int) -> float:
    """Track length, uniform in [min, max], rounded to a whole number of samples."""
    rng = np.random.default_rng([seed, index, _DURATION_STREAM])
    n = int(round(float(rng.uniform(min_duration_s, max_duration_s)) * sample_rate))
    n = min(max(n, int(math.ceil(min_duration_s * sample_rate))), int(math.floor(max_duration_s * sample_rate)))
    return n / sample_rate


# ----------------------------------------------------------------------------- score

@dataclass(frozen=True)
class _Note:
    onset_s: float
    instrument: str
    midi: float
    hold_s: float
    velocity: float
    role: str


@dataclass(frozen=True)
class _Hit:
    onset_s: float
    kind: str
    velocity: float


@dataclass
class _Bar:
    """Where one bar sits and the timing feel of its track."""

    start_s: float
    step_s: float
    swing: float
    rng: np.random.Generator

    def onset(self, step: float) -> float:
        """Humanised onset of a 16th step: swing on off-steps, a few ms of jitter."""
        swung = step + (self.swing if int(step) % 2 else 0.0)
        jitter = float(np.clip(self.rng.normal(0.0, 0.003), -0.008, 0.008))
        return max(self.start_s + swung * self.step_s + jitter, 0.0)

    def velocity(self, low: float = 0.75, high: float = 1.0) -> float:
        """Random velocity in [low, high)."""
        return float(self.rng.uniform(low, high))


def _degree_midi(tonic: int, scale: tuple[int, ...], degree: int) -> int:
    """MIDI note of a (possibly negative or > 7) scale degree above ``tonic``."""
    return tonic + scale[degree % 7] + 12 * (degree // 7)


def _voicing(plan: TrackPlan, degree: int, rng: np.random.Generator) -> list[int]:
    """A triad (sometimes a seventh) on ``degree``, random inversion, lowest note in [52, 64)."""
    scale = MODES[plan.mode]
    degrees = [degree, degree + 2, degree + 4] + ([degree + 6] if rng.random() < 0.3 else [])
    notes = sorted(_degree_midi(48 + plan.root, scale, d) for d in degrees)
    for i in range(int(rng.integers(len(notes)))):
        notes[i] += 12
    notes.sort()
    shift = 12 * math.floor((notes[0] - 52) / 12)
    return [n - shift for n in notes]


def _chord_note(bar: _Bar, plan: TrackPlan, step: float, midi: int, hold_steps: float, velocity: float) -> _Note:
    """One note of the chord instrument, its onset humanised on its own (a loose strum)."""
    return _Note(bar.onset(step), plan.chords, midi, hold_steps * bar.step_s, velocity, "chords")


def _sustained_chord(bar: _Bar, plan: TrackPlan, chord: list[int]) -> list[_Note]:
    """The chord held for the bar, or struck again at half bar."""
    splits = [(0, 16)] if bar.rng.random() < 0.7 else [(0, 8), (8, 8)]
    return [_chord_note(bar, plan, s, m, length * 1.02, bar.velocity()) for s, length in splits for m in chord]


def _chord_stabs(bar: _Bar, plan: TrackPlan, chord: list[int]) -> list[_Note]:
    """Short chord hits on the downbeat and 2-5 random other 8ths."""
    rng = bar.rng
    others = rng.choice(np.arange(2, 16, 2), size=int(rng.integers(2, 6)), replace=False)
    steps = [0] + sorted(others.tolist())
    return [_chord_note(bar, plan, s, m, 2 * rng.uniform(0.6, 1.0), bar.velocity()) for s in steps for m in chord]


def _arpeggio(bar: _Bar, plan: TrackPlan, chord: list[int], arp_step: int) -> list[_Note]:
    """Chord tones over two octaves in 8ths or 16ths: up, down, up-down or a random order."""
    rng = bar.rng
    tones = chord + [m + 12 for m in chord]
    order = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}
    pattern = order.get(str(rng.choice(["up", "down", "updown", "random"])))
    if pattern is None:
        pattern = [int(x) for x in rng.choice(tones, size=16)]
    return [_chord_note(bar, plan, s, pattern[i % len(pattern)], arp_step * rng.uniform(0.9, 1.6),
                        bar.velocity(0.6, 1.0))
            for i, s in enumerate(range(0, 16, arp_step))]


def _chord_notes(bar: _Bar, plan: TrackPlan, chord: list[int], arp_step: int) -> list[_Note]:
    """The chord instrument's part for one bar, in the track's chord style."""
    if plan.chord_style == "sustain":
        return _sustained_chord(bar, plan, chord)
    if plan.chord_style == "stabs":
        return _chord_stabs(bar, plan, chord)
    return _arpeggio(bar, plan, chord, arp_step)


def _bass_notes(bar: _Bar, plan: TrackPlan, degree: int, favourite: int) -> list[_Note]:
    """The bass line for one bar: chord root, fifth or octave on a pattern, legato."""
    rng = bar.rng
    pattern = BASS_PATTERNS[favourite if rng.random() < 0.6 else int(rng.integers(len(BASS_PATTERNS)))]
    scale = MODES[plan.mode]
    root = _degree_midi(36 + plan.root, scale, degree % 7)
    root -= 12 * (root >= 48)
    pitch = {"r": root, "f": root + _degree_midi(0, scale, degree % 7 + 4) - _degree_midi(0, scale, degree % 7),
             "o": root + 12}
    return [_Note(bar.onset(s), plan.bass, pitch[tone], length * bar.step_s * 0.92, bar.velocity(), "bass")
            for s, tone, length in pattern]


_MELODY_MOVES = np.array([-3, -2, -1, 0, 1, 2, 3])
_MELODY_MOVE_P = np.array([0.05, 0.2, 0.25, 0.1, 0.25, 0.1, 0.05])
_MELODY_DEGREES = (2, 12)  # the walk's range in scale degrees above the melody tonic


def _melody_rhythm(rng: np.random.Generator) -> list[int]:
    """3-8 onsets on the 16th grid, 8ths twice as likely, usually one on the downbeat."""
    n_notes = int(rng.integers(3, 9))
    weights = np.where(np.arange(1, 16) % 2 == 0, 2.0, 1.0)
    extra = rng.choice(np.arange(1, 16), size=n_notes - 1, replace=False, p=weights / weights.sum()).tolist()
    return sorted({0, *extra}) if rng.random() < 0.75 else sorted(extra)


def _nearest_chord_tone(midi: int, chord: list[int]) -> int:
    """The chord tone within 2 semitones of ``midi`` closest to it (``midi`` itself if none)."""
    pcs = {m % 12 for m in chord}
    return min((m for m in range(midi - 2, midi + 3) if m % 12 in pcs), key=lambda m: abs(m - midi), default=midi)


def _melody_notes(bar: _Bar, plan: TrackPlan, chord: list[int], state: list[int]) -> list[_Note]:
    """A fresh melody for one bar: random rhythm, a random walk on the scale, chord tones on strong beats.

    ``state`` holds the walk's current scale degree, carried from bar to bar.
    """
    rng = bar.rng
    if rng.random() < 0.12:
        return []
    scale = MODES[plan.mode]
    tonic = 60 + plan.root - (12 if plan.root >= 6 else 0)
    steps = _melody_rhythm(rng)
    notes = []
    for i, step in enumerate(steps):
        state[0] = int(np.clip(state[0] + rng.choice(_MELODY_MOVES, p=_MELODY_MOVE_P), *_MELODY_DEGREES))
        midi = _degree_midi(tonic, scale, state[0])
        if step % 8 == 0:
            midi = _nearest_chord_tone(midi, chord)
        length = (steps[i + 1] if i + 1 < len(steps) else 16) - step
        notes.append(_Note(bar.onset(step), plan.melody, midi, length * bar.step_s * rng.uniform(0.6, 0.95),
                           bar.velocity(0.7, 1.0), "melody"))
    return notes


def _drum_hits(bar: _Bar, groove: int, halftime: bool, sixteenths: bool, fill: bool) -> list[_Hit]:
    """Kick, snare and hats for one bar: the track's groove plus random extras, ghosts and fills."""
    rng = bar.rng
    kicks = set(KICK_GROOVES[groove])
    if rng.random() < 0.3:
        kicks.add(int(rng.integers(1, 16)))
    hits = [_Hit(bar.onset(s), "kick", bar.velocity(0.85, 1.0)) for s in sorted(kicks)]
    snares = [8] if halftime else [4, 12]
    hits += [_Hit(bar.onset(s), "snare", bar.velocity(0.8, 1.0)) for s in snares]
    if rng.random() < 0.25:
        hits.append(_Hit(bar.onset(int(rng.choice(np.arange(1, 16, 2)))), "snare", bar.velocity(0.15, 0.3)))
    if fill:
        hits += [_Hit(bar.onset(s), "snare", (0.45 + 0.15 * (s - 12)) * bar.velocity()) for s in range(12, 16)]
    open_at = 14 if rng.random() < 0.3 else -1
    for s in range(0, 16, 1 if sixteenths else 2):
        if rng.random() < 0.08:
            continue
        accent = 1.0 if s % 4 == 0 else 0.7
        hits.append(_Hit(bar.onset(s), "open_hat" if s == open_at else "hihat", accent * bar.velocity(0.5, 1.0)))
    return hits


def _compose(plan: TrackPlan, duration_s: float, rng: np.random.Generator) -> tuple[list[_Note], list[_Hit]]:
    """Notes and drum hits covering ``duration_s``: sections of 8 bars, each on one of two progressions."""
    bar_s = 4 * 60.0 / plan.tempo_bpm
    n_bars = int(math.ceil(duration_s / bar_s)) + 1
    pick = rng.choice(len(PROGRESSIONS), size=2, replace=False)
    progressions = [PROGRESSIONS[int(i)] for i in pick]
    swing = float(rng.choice([0.0, 0.0, 0.08, 0.15]))
    arp_step = int(rng.choice([1, 2]))
    favourite_bass = int(rng.integers(len(BASS_PATTERNS)))
    groove, halftime, sixteenths = int(rng.integers(len(KICK_GROOVES))), rng.random() < 0.2, rng.random() < 0.4
    intro_bars = int(rng.integers(0, 3))
    state = [int(rng.integers(4, 10))]
    notes: list[_Note] = []
    hits: list[_Hit] = []
    progression = progressions[0]
    for b in range(n_bars):
        if b % SECTION_BARS == 0 and b:
            progression = progressions[int(rng.integers(2))]
        bar = _Bar(b * bar_s, bar_s / 16, swing, rng)
        degree = progression[b % len(progression)]
        chord = _voicing(plan, degree, rng)
        notes += _chord_notes(bar, plan, chord, arp_step)
        notes += _bass_notes(bar, plan, degree, favourite_bass)
        notes += _melody_notes(bar, plan, chord, state)
        if b >= intro_bars:
            fill = b % SECTION_BARS == SECTION_BARS - 1 and rng.random() < 0.6
            hits += _drum_hits(bar, groove, halftime, sixteenths, fill)
    return notes, hits


# ----------------------------------------------------------------------------- rendering

def _mix_in(buf: np.ndarray, start_s: float, sound: np.ndarray, gain: float, sr: int) -> None:
    """Add ``gain * sound`` into ``buf`` from ``start_s``, clipped to the buffer."""
    start = int(round(start_s * sr))
    stop = min(start + len(sound), len(buf))
    if start < stop:
        buf[start:stop] += gain * sound[: stop - start]


def _render(notes: list[_Note], hits: list[_Hit], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render the score into a buffer of ``n`` samples (notes ringing past the end are cut)."""
    buf = np.zeros(n)
    for note in notes:
        if note.onset_s * sr < n:
            sound = INSTRUMENTS[note.instrument](midi_to_hz(note.midi), max(int(note.hold_s * sr), 1), sr)
            _mix_in(buf, note.onset_s, sound, _ROLE_GAIN[note.role] * note.velocity, sr)
    for hit in hits:
        if hit.onset_s * sr < n:
            _mix_in(buf, hit.onset_s, render_drum(hit.kind, sr, rng), _DRUM_GAIN[hit.kind] * hit.velocity, sr)
    return buf


def _finish(buf: np.ndarray, sr: int) -> np.ndarray:
    """10 ms fades at both ends, then peak-normalise to PEAK as float32."""
    fade = min(int(0.01 * sr), len(buf) // 2)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    buf[:fade] *= ramp
    buf[len(buf) - fade:] *= ramp[::-1]
    peak = float(np.max(np.abs(buf))) if len(buf) else 0.0
    if peak > 0:
        buf *= PEAK / peak
    return buf.astype(np.float32)


def generate_track(seed: int, index: int, duration_s: float, sample_rate: int) -> tuple[np.ndarray, dict]:
    """Synthesise track ``index`` of the corpus with ``seed``: (mono float32 audio, Track.meta dict).

    A pure function of its arguments: the same inputs give the same bytes, in any process.
    The audio has ``round(duration_s * sample_rate)`` samples and peak PEAK.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed={seed}, index={index}: allowed integers >= 0")
    if sample_rate < 1000:
        raise ValueError(f"sample_rate={sample_rate}: allowed >= 1000 Hz")
    if not 0.0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration_s={duration_s}: allowed (0, {MAX_DURATION_S}] s")
    plan = plan_track(seed, index)
    rng = np.random.default_rng([seed, index, _SCORE_STREAM])
    notes, hits = _compose(plan, duration_s, rng)
    n = int(round(duration_s * sample_rate))
    return _finish(_render(notes, hits, n, sample_rate, rng), sample_rate), plan.meta()


def _generate_to_file(job: tuple[int, int, float, int, str]) -> int:
    """Pool worker: generate one track and write it atomically; returns its index."""
    seed, index, duration_s, sample_rate, path = job
    audio, _ = generate_track(seed, index, duration_s, sample_rate)
    atomic_save_npy(path, audio)
    return index


# ----------------------------------------------------------------------------- corpus

def _check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in [low, high], else a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name}={value!r}: allowed integers {low}..{high}")
    return int(value)


def _check_durations(min_duration_s: float, max_duration_s: float, protocol: Protocol) -> tuple[float, float]:
    """Validate 1 <= min_duration_s <= max_duration_s <= MAX_DURATION_S (and min >= one segment)."""
    for name, value in (("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name}={value!r}: allowed a finite number of seconds")
    low = max(1.0, protocol.segment_s)
    if not low <= min_duration_s <= MAX_DURATION_S:
        raise ValueError(f"min_duration_s={min_duration_s}: allowed {low:g}..{MAX_DURATION_S:g} s")
    if not min_duration_s <= max_duration_s <= MAX_DURATION_S:
        raise ValueError(f"max_duration_s={max_duration_s}: allowed min_duration_s={min_duration_s:g}"
                         f"..{MAX_DURATION_S:g} s")
    return float(min_duration_s), float(max_duration_s)


class SynthCorpus(Corpus):
    """The embedded default corpus: ``n_tracks`` synthesised tracks, generated once into the cache.

    Track ids are ``synth-0000``, ``synth-0001``, ...; track ``i`` depends only on the seed, ``i``,
    the duration range and the sample rate, so a smaller corpus is a prefix of a larger one and
    shares its cache files. The defaults give 80 tracks and about 1.7 hours.
    """

    name = "synth"

    def __init__(self, protocol: Protocol = Protocol(), split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
                 n_tracks: int = 80, min_duration_s: float = 30.0, max_duration_s: float = 120.0,
                 seed: int = 0, progress: bool = True) -> None:
        if not isinstance(protocol, Protocol):
            raise ValueError(f"protocol={protocol!r}: allowed a datasets.protocol.Protocol")
        super().__init__(protocol, split_fractions)
        self.n_tracks = _check_int("n_tracks", n_tracks, 1, MAX_TRACKS)
        self.min_duration_s, self.max_duration_s = _check_durations(min_duration_s, max_duration_s, protocol)
        self.seed = _check_int("seed", seed, 0, 2**63 - 1)
        if not isinstance(progress, bool):
            raise ValueError(f"progress={progress!r}: allowed True or False")
        self.progress = progress
        self._cache_path: Path | None = None
        sr = protocol.sample_rate
        for i in range(self.n_tracks):
            track_id = self.track_id(i)
            duration = draw_duration(self.seed, i, self.min_duration_s, self.max_duration_s, sr)
            self._tracks[track_id] = Track(track_id, duration, None, plan_track(self.seed, i).meta())

    @staticmethod
    def track_id(index: int) -> str:
        """Id of track ``index``: 'synth-0007'."""
        return f"synth-{index:04d}"

    def generator_params(self) -> dict:
        """Everything the audio of a track depends on besides its index."""
        return {"generator_version": GENERATOR_VERSION, "seed": self.seed,
                "sample_rate": self.protocol.sample_rate,
                "min_duration_s": self.min_duration_s, "max_duration_s": self.max_duration_s}

    def identity(self) -> dict:
        """Base identity plus the generator parameters, version and corpus size."""
        return {**super().identity(), "generator": {**self.generator_params(), "n_tracks": self.n_tracks}}

    @property
    def cache_path(self) -> Path:
        """Folder holding one ``<track_id>.npy`` per generated track (resolved, and created, on first use)."""
        if self._cache_path is None:
            self._cache_path = cache_dir("synth", stable_hash(self.generator_params()))
        return self._cache_path

    def track_path(self, track_id: str) -> Path:
        """Cache file of one track."""
        return self.cache_path / f"{self.track(track_id).track_id}.npy"

    def total_duration_s(self) -> float:
        """Sum of all track durations in seconds."""
        return float(sum(t.duration_s for t in self.tracks()))

    def missing(self) -> list[str]:
        """Ids of tracks not yet in the cache."""
        folder = self.cache_path
        return [t.track_id for t in self.tracks() if not (folder / f"{t.track_id}.npy").is_file()]

    def ensure_cached(self, workers: int = DEFAULT_WORKERS) -> None:
        """Generate every track missing from the cache (``workers`` processes; 1 runs in this process).

        Files are written atomically, so an interrupted run resumes with the tracks already written.
        """
        workers = _check_int("workers", workers, 1, 256)
        missing = self.missing()
        if not missing:
            return
        atomic_write_json(self.cache_path / "params.json", self.generator_params())
        jobs = sorted((self._job(t) for t in missing), key=lambda job: -job[2])  # longest first: balanced pool
        bar = tqdm(total=len(jobs), desc=f"synth: generating {len(jobs)} tracks", unit="track",
                   disable=not self.progress)
        with bar:
            if workers == 1 or len(jobs) == 1:
                for job in jobs:
                    _generate_to_file(job)
                    bar.update()
                return
            with _pool_context().Pool(min(workers, len(jobs))) as pool:
                for _ in pool.imap_unordered(_generate_to_file, jobs):
                    bar.update()

    def load(self, track_id: str) -> np.ndarray:
        """Mono float32 audio of one track, generating the missing tracks into the cache on first need."""
        path = self.track_path(track_id)
        expected = int(round(self.track(track_id).duration_s * self.protocol.sample_rate))
        if not path.is_file():
            self.ensure_cached()
        audio = self._read(path)
        if audio is None or audio.shape != (expected,):
            _generate_to_file(self._job(track_id))  # a stale or damaged file: regenerate just this track
            audio = self._read(path)
        return audio

    def _job(self, track_id: str) -> tuple[int, int, float, int, str]:
        """Arguments of ``_generate_to_file`` for one track."""
        track = self.track(track_id)
        index = int(track_id.rsplit("-", 1)[1])
        return self.seed, index, track.duration_s, self.protocol.sample_rate, str(self.track_path(track_id))

    @staticmethod
    def _read(path: Path) -> np.ndarray | None:
        """The cached array, or None if the file is unreadable."""
        try:
            audio = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return audio if audio.dtype == np.float32 and audio.ndim == 1 else None


def _pool_context() -> mp.context.BaseContext:
    """'fork' where the platform has it (fast start, no re-import of __main__), else 'spawn'."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


