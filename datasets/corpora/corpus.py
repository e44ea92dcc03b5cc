"""The corpus interface: a list of tracks with ids, splits and a loader for their audio."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from datasets.audio_io import AudioReadError, audio_info, read_audio, warn_skip
from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS, check_fractions, split_of


@dataclass(frozen=True)
class Track:
    """One track of a corpus: a stable id, its length and where its audio comes from."""

    track_id: str
    duration_s: float
    path: Path | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file left out of a corpus and why (unreadable, corrupt, too short...)."""

    path: str
    reason: str


class Corpus:
    """Base class: subclasses fill ``self._tracks`` and may override ``load``.

    Track ids are stable strings; the split of a track is a function of its id alone.
    """

    name: str = "corpus"

    def __init__(self, protocol: Protocol = Protocol(),
                 split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> None:
        self.protocol = protocol
        self.split_fractions = check_fractions(split_fractions)
        self._tracks: dict[str, Track] = {}
        self.skipped: list[Skipped] = []

    def tracks(self, split: str | None = None) -> list[Track]:
        """Tracks in id order, optionally only those of one split."""
        out = [self._tracks[k] for k in sorted(self._tracks)]
        if split is not None:
            out = [t for t in out if self.split(t.track_id) == split]
        return out

    def track(self, track_id: str) -> Track:
        """One track by id."""
        try:
            return self._tracks[track_id]
        except KeyError:
            raise KeyError(f"corpus {self.name!r} has no track {track_id!r}") from None

    def split(self, track_id: str) -> str:
        """'train', 'val' or 'test' by a stable hash of the track id."""
        return split_of(track_id, self.split_fractions, salt="track")

    def load(self, track_id: str) -> np.ndarray:
        """Mono float32 audio of one track at the protocol's sample rate."""
        track = self.track(track_id)
        if track.path is None:
            raise NotImplementedError(f"{type(self).__name__} must override load()")
        return read_audio(track.path, self.protocol.sample_rate)

    def identity(self) -> dict:
        """What defines this corpus's content, for cache keys and query-set hashes."""
        return {"corpus": self.name, "protocol": self.protocol.to_dict(),
                "splits": self.split_fractions,
                "tracks": [(t.track_id, round(t.duration_s, 3)) for t in self.tracks()]}

    def _add_file(self, track_id: str, path: Path, meta: Mapping[str, str] | None = None,
                  min_duration_s: float = 0.0) -> None:
        """Register a file as a track, or record it as skipped (with a warning) if unreadable."""
        try:
            info = audio_info(path)
        except AudioReadError as exc:
            self._skip(path, str(exc))
            return
        if info.duration_s < min_duration_s:
            self._skip(path, f"{info.duration_s:.1f} s is shorter than {min_duration_s:.1f} s")
            return
        self._tracks[track_id] = Track(track_id, info.duration_s, path, dict(meta or {}))

    def _skip(self, path: Path | str, reason: str) -> None:
        warn_skip(path, reason)
        self.skipped.append(Skipped(str(path), reason))
