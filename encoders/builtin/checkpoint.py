"""The built-in encoder's checkpoints: weights + config + protocol + training record in one file,
and :class:`CheckpointEncoder`, the built-in encoder plugin that runs one."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from datasets.cache import atomic_write_bytes
from datasets.protocol import Protocol

from ..interface import Encoder, module_sha256
from . import nafp, transformer
from .frontend import FrontendConfig
from .nafp import EncoderConfig, FingerprintEncoder
from .transformer import MelPatchTransformer, TransformerConfig

#: architecture name -> (model class, its config class); a checkpoint names its architecture
ARCHITECTURES: dict[str, tuple[type, type]] = {
    nafp.ARCHITECTURE: (FingerprintEncoder, EncoderConfig),
    transformer.ARCHITECTURE: (MelPatchTransformer, TransformerConfig),
}
ModelConfig = EncoderConfig | TransformerConfig


def architecture_of(model_or_config: object) -> str:
    """The architecture name of a built-in model, or of its config."""
    for name, classes in ARCHITECTURES.items():
        if isinstance(model_or_config, classes):
            return name
    raise TypeError(f"{type(model_or_config).__name__} is not a built-in encoder model or config "
                    f"(architectures: {', '.join(ARCHITECTURES)})")


def build_model(config: ModelConfig, frontend: FrontendConfig) -> torch.nn.Module:
    """A fresh model of ``config``'s architecture."""
    return ARCHITECTURES[architecture_of(config)][0](config, frontend)

FORMAT = "flowhash-bench-encoder"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"  # encoders/checkpoints
DEFAULT_ENCODER = "synth-default"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


@dataclass(eq=False)
class CheckpointEncoder(Encoder):
    """The built-in encoder (plugin name ``checkpoint``): runs a checkpoint of a built-in architecture.

    It holds the loaded model, the protocol it was trained for, its training record and the
    checkpoint file's sha256.

    Its cache key (:attr:`sha256`) is the checkpoint's sha256 alone: the checkpoint names its
    architecture, which loading checks, so the model code's hash is recorded in :attr:`identity`
    but kept out of the key, and a refactor that leaves the arithmetic alone keeps the cached
    embeddings (docs/adding-an-encoder.md, "Identity").
    """

    model: FingerprintEncoder | MelPatchTransformer
    protocol: Protocol
    record: dict = field(default_factory=dict)
    weights_sha256: str = ""
    path: Path | None = None

    @property
    def name(self) -> str:
        """Short name for reports: the file stem, or 'untrained'."""
        return self.path.stem if self.path else "untrained"

    @property
    def sample_rate(self) -> int:
        """The trained protocol's sample rate."""
        return self.protocol.sample_rate

    @property
    def segment_s(self) -> float:
        """The trained protocol's segment length."""
        return self.protocol.segment_s

    @property
    def hop_s(self) -> float:
        """The trained protocol's hop."""
        return self.protocol.hop_s

    @property
    def dim(self) -> int:
        """The embedding dimension."""
        return self.model.config.dim

    @property
    def sha256(self) -> str:
        """The checkpoint file's sha256 (the key of cached embeddings)."""
        return self.weights_sha256

    @property
    def identity(self) -> dict:
        """Plugin name, checkpoint, architecture, the model code's sha256 and the weights' sha256."""
        return {"name": "checkpoint", "checkpoint": self.name, "architecture": architecture_of(self.model),
                "module": type(self.model).__module__, "module_sha256": module_sha256(type(self.model)),
                "weights_sha256": self.weights_sha256, "params": {"checkpoint": str(self.path) if self.path else None}}

    @property
    def label(self) -> str:
        """Its name, checkpoint file and hash."""
        where = f"{self.path}, sha256 {self.sha256[:12]}" if self.path else f"sha256 {self.sha256[:12]}"
        return f"{self.name!r} ({where})"

    @classmethod
    def open(cls, protocol: Protocol, device: str = "cpu", checkpoint: str = DEFAULT_ENCODER) -> "CheckpointEncoder":
        """``encoder: checkpoint`` with ``encoder_params: {checkpoint: NAME_OR_PATH}``."""
        return load_checkpoint(checkpoint, protocol, device)

    @torch.inference_mode()
    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """The model's L2-normalised embeddings, computed on the model's device."""
        device = next(self.model.parameters()).device
        return self.model(torch.from_numpy(np.ascontiguousarray(waveforms, dtype=np.float32)).to(device)).cpu().numpy()

    def to(self, device: str) -> "CheckpointEncoder":
        """A copy whose model is on ``device`` (the model is moved, not copied)."""
        return replace(self, model=self.model.to(device).eval())


def checkpoint_bytes(model: torch.nn.Module, protocol: Protocol, record: dict) -> bytes:
    """Serialise a built-in model with everything needed to rebuild and check it."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": architecture_of(model),
        "model_config": model.config.to_dict(), "frontend_config": model.frontend_config.to_dict(),
        "protocol": protocol.to_dict(), "record": record,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_checkpoint(path: Path | str, model: torch.nn.Module, protocol: Protocol, record: dict) -> str:
    """Write a checkpoint atomically; returns its sha256."""
    blob = checkpoint_bytes(model, protocol, record)
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def resolve(name_or_path: str | Path) -> Path:
    """A shipped checkpoint's name ('synth-default') or a path -> an existing file."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SHIPPED_DIR.glob("*.pt"))
    raise FileNotFoundError(f"encoder {name_or_path!r}: no such file, and no shipped checkpoint of that "
                            f"name (shipped: {', '.join(names) or 'none'})")


def same_signal(a: Protocol, b: Protocol) -> bool:
    """Whether an encoder trained under protocol ``a`` embeds segments of protocol ``b``: the same
    sample rate and segment length (the hop only places segments, so it may differ)."""
    return a.sample_rate == b.sample_rate and a.segment_s == b.segment_s


def load_checkpoint(name_or_path: str | Path, protocol: Protocol | None = None,
                    device: str = "cpu") -> CheckpointEncoder:
    """Load and check a checkpoint; ``protocol``, when given, must match the one it was trained for."""
    path = resolve(name_or_path)
    blob = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable encoder checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a FlowHash bench encoder checkpoint")
    if payload.get("architecture") not in ARCHITECTURES:
        raise CheckpointError(f"{path}: architecture {payload.get('architecture')!r}, this code builds "
                              f"{', '.join(map(repr, ARCHITECTURES))}")
    model_class, config_class = ARCHITECTURES[payload["architecture"]]
    saved_protocol = Protocol(**payload["protocol"])
    if protocol is not None and not same_signal(saved_protocol, protocol):
        raise CheckpointError(f"{path}: trained for protocol {saved_protocol.to_dict()}, "
                              f"asked to run with {protocol.to_dict()} (sample rate and segment length "
                              f"must match; the DB hop may differ)")
    try:
        model = model_class(config_class.from_dict(payload["model_config"]),
                            FrontendConfig(**payload["frontend_config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture ({exc})") from exc
    model.eval().to(device)
    return CheckpointEncoder(model, protocol or saved_protocol, payload.get("record", {}),
                             hashlib.sha256(blob).hexdigest(), path)


def untrained_encoder(protocol: Protocol = Protocol(), config: ModelConfig = EncoderConfig(),
                      seed: int = 0, device: str = "cpu") -> CheckpointEncoder:
    """A randomly initialised encoder of ``config``'s architecture (the 'no training' reference)."""
    torch.manual_seed(seed)
    model = build_model(config, FrontendConfig(sample_rate=protocol.sample_rate)).eval().to(device)
    blob = checkpoint_bytes(model, protocol, {"trained": False, "seed": seed})
    return CheckpointEncoder(model, protocol, {"trained": False, "seed": seed}, hashlib.sha256(blob).hexdigest())
