"""Audio front end: log-mel spectrogram of a segment, normalised per segment."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchaudio.transforms as T
from torch import nn


@dataclass(frozen=True)
class FrontendConfig:
    """Mel analysis parameters (defaults: NAFP at 8 kHz)."""

    sample_rate: int = 8000
    n_fft: int = 1024
    hop_length: int = 256
    f_min: float = 300.0
    f_max: float = 4000.0
    n_mels: int = 64
    log_floor: float = 1e-6

    def to_dict(self) -> dict:
        """Plain-dict form for checkpoints."""
        return asdict(self)


class LogMelFrontend(nn.Module):
    """[batch, samples] waveform -> [batch, 1, n_mels, frames] log-mel, zero mean and unit
    variance per segment (so the level of a query does not matter)."""

    def __init__(self, config: FrontendConfig = FrontendConfig()) -> None:
        super().__init__()
        self.config = config
        self.mel = T.MelSpectrogram(sample_rate=config.sample_rate, n_fft=config.n_fft,
                                    hop_length=config.hop_length, f_min=config.f_min,
                                    f_max=min(config.f_max, config.sample_rate / 2),
                                    n_mels=config.n_mels, power=2.0)

    def n_frames(self, n_samples: int) -> int:
        """Frames the front end makes of ``n_samples`` (centred STFT)."""
        return n_samples // self.config.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel features of a batch of equal-length segments."""
        logmel = torch.log(self.mel(wave) + self.config.log_floor)
        mean = logmel.mean(dim=(-2, -1), keepdim=True)
        std = logmel.std(dim=(-2, -1), keepdim=True).clamp_min(1e-5)
        return ((logmel - mean) / std).unsqueeze(1)
