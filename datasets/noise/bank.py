"""Background-noise banks: the :class:`NoiseBank` base class and :class:`CombinedNoiseBank`.

A bank is a list of clips, each with a stable id, a kind and a train/val/test split (stratified
by kind, so every kind with two or more clips has test clips), and a loader that returns mono
float32 audio at the protocol rate with unit RMS (the degrader scales it to the SNR it wants).
The banks: synthetic noise from seeds (:mod:`datasets.noise.synth`, the embedded default), real
ambience from Debian game packages (:mod:`datasets.noise.debian`), a folder of recordings
(:mod:`datasets.noise.folder`), or several combined; :mod:`datasets.noise.registry` opens one by spec.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from datasets.corpora.corpus import Skipped
from datasets.protocol import Protocol
from datasets.splits import SPLITS, stratified_splits

GENERATOR_VERSION = 1
"""Bump when a generator changes what a seed produces (it is part of every cache key)."""

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


def _rms_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x**2)))
    if rms <= 0 or not np.isfinite(rms):
        raise ValueError("cannot RMS-normalise a silent or non-finite signal")
    return (x / rms).astype(np.float32)


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
