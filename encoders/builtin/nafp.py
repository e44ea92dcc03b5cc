"""NAFP-style fingerprint encoder (Chang et al. 2021): separable convolutions and a
divide-and-encode head giving L2-normalised d-dimensional embeddings."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .frontend import FrontendConfig, LogMelFrontend

ARCHITECTURE = "nafp-sepconv-v1"


@dataclass(frozen=True)
class EncoderConfig:
    """Model size: channels per separable block, embedding size, head width."""

    channels: tuple[int, ...] = (32, 64, 128, 128, 256, 256)
    dim: int = 128
    head_hidden: int = 32

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels}: need one or more positive sizes")
        if self.dim < 2 or self.head_hidden < 1:
            raise ValueError(f"dim={self.dim}, head_hidden={self.head_hidden}: need dim >= 2, head_hidden >= 1")

    def to_dict(self) -> dict:
        """Plain-dict form for checkpoints."""
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        """Inverse of to_dict."""
        return cls(channels=tuple(d["channels"]), dim=int(d["dim"]), head_hidden=int(d["head_hidden"]))


class SeparableBlock(nn.Module):
    """A 1x3 convolution along time then a 3x1 along frequency, each strided, normalised, ELU."""

    def __init__(self, c_in: int, c_out: int, stride_f: int, stride_t: int) -> None:
        super().__init__()
        self.conv_t = nn.Conv2d(c_in, c_out, (1, 3), stride=(1, stride_t), padding=(0, 1))
        self.norm_t = nn.GroupNorm(1, c_out)
        self.conv_f = nn.Conv2d(c_out, c_out, (3, 1), stride=(stride_f, 1), padding=(1, 0))
        self.norm_f = nn.GroupNorm(1, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        x = F.elu(self.norm_t(self.conv_t(x)))
        return F.elu(self.norm_f(self.conv_f(x)))


class DivideAndEncode(nn.Module):
    """NAFP's projection head: the feature vector is cut into ``dim`` groups, each mapped to one
    output by its own small MLP (grouped 1x1 convolutions)."""

    def __init__(self, features: int, dim: int, hidden: int) -> None:
        super().__init__()
        if features % dim:
            raise ValueError(f"last channel count {features} must be a multiple of dim={dim}")
        self.fc1 = nn.Conv1d(features, dim * hidden, 1, groups=dim)
        self.fc2 = nn.Conv1d(dim * hidden, dim, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, features] -> [batch, dim]."""
        return self.fc2(F.elu(self.fc1(x.unsqueeze(-1)))).squeeze(-1)


class FingerprintEncoder(nn.Module):
    """Waveform segments [batch, samples] -> L2-normalised embeddings [batch, dim]."""

    def __init__(self, config: EncoderConfig = EncoderConfig(),
                 frontend: FrontendConfig = FrontendConfig()) -> None:
        super().__init__()
        self.config = config
        self.frontend_config = frontend
        self.frontend = LogMelFrontend(frontend)
        blocks, c_in, f = [], 1, frontend.n_mels
        for c_out in config.channels:
            blocks.append(SeparableBlock(c_in, c_out, 2 if f > 1 else 1, 2))
            c_in, f = c_out, (f + 1) // 2
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = DivideAndEncode(c_in, config.dim, config.head_hidden)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Embed a batch of equal-length waveform segments."""
        x = self.blocks(self.frontend(wave))
        return F.normalize(self.head(self.pool(x).flatten(1)), dim=-1)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
