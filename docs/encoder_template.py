"""An encoder plugin template: ``random-mel``, a log-mel patch under a fixed random projection.

Copy this file, rename the class and ``name``, and replace ``embed`` with your model. Run it with
``python -m bench run --encoder path/to/this_file.py`` (docs/adding-an-encoder.md).

``random-mel`` learns nothing: each 1 s segment at 8 kHz becomes a [n_mels, frames] log-mel patch,
flattened, projected by a Gaussian matrix drawn from ``seed`` to ``dim`` values and L2-normalised.
It is a floor that any trained encoder should clear, not a fingerprint to deploy.
"""
from __future__ import annotations

import numpy as np
import torch
import torchaudio

from encoders.interface import Encoder
from encoders.registry import register_encoder


@register_encoder
class RandomMel(Encoder):
    """Log-mel patch -> fixed random projection -> L2 norm."""

    name = "random-mel"
    sample_rate = 8000
    segment_s = 1.0
    hop_s = 0.5
    metric = "ip"

    def __init__(self, dim: int = 128, n_mels: int = 32, seed: int = 0) -> None:
        if dim < 1 or n_mels < 1:
            raise ValueError(f"dim={dim}, n_mels={n_mels}: allowed >= 1")
        self.dim = int(dim)
        self.params = {"dim": self.dim, "n_mels": int(n_mels), "seed": int(seed)}  # enter the cache key
        self.mel = torchaudio.transforms.MelSpectrogram(self.sample_rate, n_fft=512, hop_length=256, n_mels=n_mels)
        frames = int(round(self.segment_s * self.sample_rate)) // 256 + 1
        rng = np.random.default_rng(seed)
        self.projection = torch.from_numpy(rng.standard_normal((n_mels * frames, self.dim)).astype(np.float32))

    @torch.inference_mode()
    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """[n, samples] float32 -> [n, dim] float32, L2-normalised."""
        patch = torch.log(self.mel(torch.from_numpy(waveforms)) + 1e-6)       # [n, n_mels, frames]
        patch = patch - patch.mean(dim=(1, 2), keepdim=True)                   # loudness-invariant
        out = patch.flatten(1) @ self.projection
        return torch.nn.functional.normalize(out, dim=1).numpy()
