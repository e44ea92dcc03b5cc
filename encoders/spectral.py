"""Classical audio features for methods that do not search the neural embeddings.

A Waveprint-style method (Baluja & Covell 2008) starts from a *spectral image* of each 1 s
segment: a log-mel spectrogram of ``n_bands`` bands (log-spaced between ``f_min`` and
``f_max``, 318-2000 Hz as in Waveprint) by ``n_frames`` frames, cut from the segment with no
padding, so every segment of any protocol gives the same fixed-size image. It is normalised per
segment (zero mean, unit variance: the level of a query does not matter) and stored flattened,
band-major: row ``i`` of the matrix is ``image.reshape(n_bands * n_frames)`` of segment ``i``.

The harness computes these for the DB segment table and for every query segment, exactly like
the embeddings (``encoders.embed``): rows in the same order, cached on disk under
``$FLOWHASH_BENCH_CACHE/features/`` and keyed by the feature config, the protocol, and the corpus
identity plus segment table (DB) or the query set's content hash (queries). Methods receive the
matrix through the ordinary ``Method.build`` / ``Method.search`` calls; they never see audio.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torchaudio.transforms as T

from datasets.cache import stable_hash
from datasets.corpora.corpus import Corpus
from datasets.protocol import Protocol
from datasets.queries.queryset import QuerySet

from .embed import db_identity, db_matrix, query_matrix

FEATURE_BATCH = 1024


@dataclass(frozen=True)
class SpectralConfig:
    """The spectral image of a segment: ``n_bands`` x ``n_frames`` log-mel values."""

    n_bands: int = 32
    n_frames: int = 32
    window_s: float = 0.064   # STFT window (512 samples at 8 kHz)
    f_min: float = 318.0
    f_max: float = 2000.0
    log_floor: float = 1e-6

    def __post_init__(self) -> None:
        if self.n_bands < 2 or self.n_frames < 2:
            raise ValueError(f"n_bands={self.n_bands}, n_frames={self.n_frames}: allowed >= 2 each")
        if not 0 < self.f_min < self.f_max:
            raise ValueError(f"f_min={self.f_min}, f_max={self.f_max}: allowed 0 < f_min < f_max")

    @property
    def dim(self) -> int:
        """Width of the feature matrix: n_bands * n_frames."""
        return self.n_bands * self.n_frames

    def to_dict(self) -> dict:
        """Plain-dict form for cache keys and results."""
        return asdict(self)


class SpectralImage:
    """Waveform segments [n, samples] -> spectral images, flattened [n, n_bands * n_frames] float32."""

    def __init__(self, protocol: Protocol, config: SpectralConfig = SpectralConfig()) -> None:
        self.protocol, self.config = protocol, config
        sr, seg = protocol.sample_rate, protocol.segment_samples
        self.n_fft = int(round(config.window_s * sr))
        if not 2 <= self.n_fft <= seg - config.n_frames + 1:
            raise ValueError(f"window_s={config.window_s} gives a {self.n_fft}-sample window; a {seg}-sample "
                             f"segment needs one of at most {seg - config.n_frames + 1} for {config.n_frames} frames")
        self.hop = (seg - self.n_fft) // (config.n_frames - 1)
        f_max = min(config.f_max, sr / 2)
        if config.f_min >= f_max:
            raise ValueError(f"f_min={config.f_min} Hz is at or above the Nyquist frequency {sr / 2} Hz")
        self.mel = T.MelSpectrogram(sample_rate=sr, n_fft=self.n_fft, hop_length=self.hop, center=False,
                                    f_min=config.f_min, f_max=f_max, n_mels=config.n_bands, power=2.0)

    @torch.no_grad()
    def __call__(self, segments: np.ndarray) -> np.ndarray:
        """Features of equal-length waveform segments (one per row)."""
        c = self.config
        out = np.empty((len(segments), c.dim), dtype=np.float32)
        for i in range(0, len(segments), FEATURE_BATCH):
            wave = torch.from_numpy(np.array(segments[i:i + FEATURE_BATCH], dtype=np.float32))  # a writable copy
            image = torch.log(self.mel(wave)[..., :c.n_frames] + c.log_floor)  # [b, bands, frames]
            mean = image.mean(dim=(-2, -1), keepdim=True)
            std = image.std(dim=(-2, -1), keepdim=True).clamp_min(1e-5)
            out[i:i + len(wave)] = ((image - mean) / std).reshape(len(wave), -1).numpy()
        return out


def spectral_db(corpus: Corpus, segments: pd.DataFrame, config: SpectralConfig = SpectralConfig(),
                progress: bool = True, cache: bool = True) -> tuple[np.ndarray, bool]:
    """Spectral images of the DB segment table's rows (in its order); returns (matrix, cache hit)."""
    key = stable_hash({"features": config.to_dict(), **db_identity(corpus, segments)}, n=32)
    return db_matrix(SpectralImage(corpus.protocol, config), config.dim, corpus, segments, key,
                     ("features", "spectrogram-db"), "spectra DB", progress, cache,
                     producer="the spectral-image front end (encoders/spectral.py)")


def spectral_queries(queryset: QuerySet, protocol: Protocol, config: SpectralConfig = SpectralConfig(),
                     progress: bool = True, cache: bool = True) -> tuple[np.ndarray, pd.DataFrame, bool]:
    """Spectral images of every query segment, its index table (as ``embed_queries``'s), and cache hit."""
    key = stable_hash({"features": config.to_dict(), "queryset": queryset.content_hash,
                       "protocol": protocol.to_dict()}, n=32)
    return query_matrix(SpectralImage(protocol, config), queryset, protocol, key,
                        ("features", "spectrogram-queries"), progress, cache,
                        producer="the spectral-image front end (encoders/spectral.py)")
