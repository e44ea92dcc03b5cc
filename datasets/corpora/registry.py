"""The corpora by name: ``open_corpus("synth" | "folder" | "fma" | "debian-music")``."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .corpus import Corpus

CORPORA = ("synth", "folder", "fma", "debian-music")


def open_corpus(name: str, protocol: Protocol = Protocol(), path: str | Path | None = None,
                split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS, fma_size: str = "small",
                synth_tracks: int | None = None, synth_seed: int = 0, progress: bool = True) -> Corpus:
    """Open a corpus by name; ``path`` is the folder for `folder` and `fma` (and an optional
    extracted-packages folder for `debian-music`)."""
    if name == "synth":
        from datasets.corpora.synth import MAX_TRACKS, SynthCorpus

        if synth_tracks is not None and (isinstance(synth_tracks, bool) or not isinstance(synth_tracks, int)
                                         or not 1 <= synth_tracks <= MAX_TRACKS):
            raise ValueError(f"synth_tracks (--synth-tracks) = {synth_tracks!r}: allowed integers 1..{MAX_TRACKS}")
        if isinstance(synth_seed, bool) or not isinstance(synth_seed, int) or synth_seed < 0:
            raise ValueError(f"synth_seed (--synth-seed) = {synth_seed!r}: allowed integers >= 0")
        extra = {} if synth_tracks is None else {"n_tracks": synth_tracks}
        return SynthCorpus(protocol, split_fractions, seed=synth_seed, progress=progress, **extra)
    if name in ("folder", "fma") and path is None:
        raise ValueError(f"corpus {name!r} needs --corpus-path (the folder that holds it)")
    if name == "folder":
        from datasets.corpora.folder import FolderCorpus

        return FolderCorpus(path, protocol, split_fractions)
    if name == "fma":
        from datasets.corpora.fma import FMACorpus

        return FMACorpus(path, fma_size, protocol, split_fractions)
    if name == "debian-music":
        from datasets.corpora.debian_music import DebianMusicCorpus

        return DebianMusicCorpus(protocol, split_fractions, root=Path(path) if path else None,
                                 progress=progress)
    raise ValueError(f"unknown corpus {name!r}; allowed: {', '.join(CORPORA)}")

