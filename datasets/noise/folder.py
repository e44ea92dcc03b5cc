"""A noise bank read from any folder of recordings: :class:`FolderNoiseBank`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from datasets.audio_io import AudioReadError, audio_info, find_audio_files, read_audio, warn_skip
from datasets.cache import cache_dir
from datasets.corpora.corpus import Skipped
from datasets.dedup import (
    DEFAULT_PARAMS,
    Fingerprint,
    FingerprintParams,
    content_groups,
    find_overlaps,
    fingerprint_file,
    shared_groups,
)
from datasets.protocol import Protocol

from .bank import DEFAULT_SPLIT_FRACTIONS, GENERATOR_VERSION, NoiseBank, NoiseBankError, NoiseClip, _rms_normalise

MIN_OVERLAP_S = 0.5  # shared audio that ties two recordings together, as in the Debian ambience bank


class FolderNoiseBank(NoiseBank):
    """Noise recordings from any folder of soundfile-readable audio files.

    Ids are the path relative to ``root`` without extension; the kind is the name of the
    file's parent folder. Unreadable files and files shorter than ``min_duration_s`` are
    skipped with a warning and recorded in ``skipped``. Audio is decoded to mono at the
    protocol rate and scaled to unit RMS on load.

    Recordings that share audio (loops cut from one take, as in most game ambience folders) must
    not be split between train and test: every file is fingerprinted (cached by its sha256) and
    files sharing at least ``min_overlap_s`` of audio form a content group that lands in one split,
    as the Debian ambience bank does.
    """

    name = "folder"

    def __init__(self, root: Path | str, protocol: Protocol = Protocol(), min_duration_s: float = 1.0,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
                 min_overlap_s: float = MIN_OVERLAP_S, params: FingerprintParams = DEFAULT_PARAMS) -> None:
        super().__init__(protocol, split_fractions)
        self.root = Path(root)
        self.min_overlap_s = float(min_overlap_s)
        self.content_fingerprints: dict[str, Fingerprint] = {}
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
        entries, self.groups = self._content_groups(entries, params)
        self._set_clips(entries, self.groups)

    def _content_groups(self, entries: list[tuple[str, str, float]], params: FingerprintParams
                        ) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
        """The entries whose audio decodes, and {noise_id: group} of clips that share audio (a clip
        alone is its own group)."""
        fp_dir = cache_dir("fingerprints", params.key(), "files")
        kept = []
        for entry in entries:
            path = self._paths[entry[0]]
            try:
                self.content_fingerprints[entry[0]] = fingerprint_file(path, fp_dir, params)[1]
            except AudioReadError as exc:
                self._skip(path, str(exc))
                del self._paths[entry[0]]
                continue
            kept.append(entry)
        if not kept:
            raise NoiseBankError(f"{self.root}: no usable noise recordings ({len(self.skipped)} skipped)")
        overlaps = find_overlaps(self.content_fingerprints, self.min_overlap_s)
        return kept, content_groups([e[0] for e in kept], overlaps, {i: d for i, _, d in kept})

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
                "clips": [(c.noise_id, c.kind, round(c.duration_s, 3)) for c in self.clips()],
                "content_groups": sorted(shared_groups(self.groups).values())}

    def _read(self, clip: NoiseClip) -> np.ndarray:
        path = self._paths[clip.noise_id]
        audio = read_audio(path, self.protocol.sample_rate)
        try:
            return _rms_normalise(audio)
        except ValueError:
            raise AudioReadError(f"{path}: silent recording, cannot use it as noise") from None
