"""A transformer over log-mel patches: the built-in second encoder family.

Like the audio spectrogram transformers the FlowHash paper's encoder belongs to: the segment's
log-mel image (the NAFP front end, ``frontend.py``) is cut into ``patch_mels`` x ``patch_frames``
patches, each linearly embedded, a learned class token and position embeddings added, and
``depth`` pre-norm transformer layers applied; the class token's output, projected to ``dim`` and
L2-normalised, is the fingerprint. Trained by the suite's contrastive trainer (``encoders.train``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .frontend import FrontendConfig, LogMelFrontend

ARCHITECTURE = "mel-patch-transformer-v1"


@dataclass(frozen=True)
class TransformerConfig:
    """Patch size, width, depth, heads, MLP width, frames per segment and embedding size."""

    patch_mels: int = 8
    patch_frames: int = 4
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp: int = 256
    frames: int = 32  # log-mel frames of one segment (1 s at 8 kHz, hop 256: 32)
    dim: int = 128

    architecture = ARCHITECTURE

    def __post_init__(self) -> None:
        for name in ("patch_mels", "patch_frames", "width", "depth", "heads", "mlp", "frames", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: allowed >= 1")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be a multiple of heads={self.heads}")
        if self.frames % self.patch_frames:
            raise ValueError(f"frames={self.frames} must be a multiple of patch_frames={self.patch_frames}")

    def to_dict(self) -> dict:
        """Plain-dict form for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        """Inverse of to_dict."""
        return cls(**{k: int(v) for k, v in d.items()})


class MelPatchTransformer(nn.Module):
    """Waveform segments [batch, samples] -> L2-normalised embeddings [batch, dim]."""

    def __init__(self, config: TransformerConfig = TransformerConfig(),
                 frontend: FrontendConfig = FrontendConfig()) -> None:
        super().__init__()
        if frontend.n_mels % config.patch_mels:
            raise ValueError(f"n_mels={frontend.n_mels} must be a multiple of patch_mels={config.patch_mels}")
        self.config = config
        self.frontend_config = frontend
        self.frontend = LogMelFrontend(frontend)
        n_patches = (frontend.n_mels // config.patch_mels) * (config.frames // config.patch_frames)
        self.patch = nn.Conv2d(1, config.width, (config.patch_mels, config.patch_frames),
                               stride=(config.patch_mels, config.patch_frames))
        self.cls = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, config.width) * 0.02)
        layer = nn.TransformerEncoderLayer(config.width, config.heads, config.mlp, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.dim)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Embed a batch of equal-length waveform segments."""
        x = self.frontend(wave)
        frames = self.config.frames
        x = x[..., :frames] if x.shape[-1] >= frames else F.pad(x, (0, frames - x.shape[-1]))
        tokens = self.patch(x).flatten(2).transpose(1, 2)                       # [batch, patches, width]
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        out = self.norm(self.layers(tokens)[:, 0])
        return F.normalize(self.head(out), dim=-1)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
