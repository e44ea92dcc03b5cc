"""Encoder checkpoints: weights + config + protocol + training record in one file."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from datasets.cache import atomic_write_bytes
from datasets.protocol import Protocol

from .frontend import FrontendConfig
from .model import ARCHITECTURE, EncoderConfig, FingerprintEncoder

FORMAT = "flowhash-bench-encoder"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"  # encoders/checkpoints
DEFAULT_ENCODER = "synth-default"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


@dataclass
class Encoder:
    """A loaded encoder: the model, the protocol it was trained for, its record and file hash."""

    model: FingerprintEncoder
    protocol: Protocol
    record: dict
    sha256: str
    path: Path | None = None

    @property
    def name(self) -> str:
        """Short name for reports: the file stem, or 'untrained'."""
        return self.path.stem if self.path else "untrained"


def checkpoint_bytes(model: FingerprintEncoder, protocol: Protocol, record: dict) -> bytes:
    """Serialise a model with everything needed to rebuild and check it."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE,
        "model_config": model.config.to_dict(), "frontend_config": model.frontend_config.to_dict(),
        "protocol": protocol.to_dict(), "record": record,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_checkpoint(path: Path | str, model: FingerprintEncoder, protocol: Protocol, record: dict) -> str:
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
                    device: str = "cpu") -> Encoder:
    """Load and check a checkpoint; ``protocol``, when given, must match the one it was trained for."""
    path = resolve(name_or_path)
    blob = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable encoder checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a FlowHash bench encoder checkpoint")
    if payload.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{path}: architecture {payload.get('architecture')!r}, this code builds "
                              f"{ARCHITECTURE!r}")
    saved_protocol = Protocol(**payload["protocol"])
    if protocol is not None and not same_signal(saved_protocol, protocol):
        raise CheckpointError(f"{path}: trained for protocol {saved_protocol.to_dict()}, "
                              f"asked to run with {protocol.to_dict()} (sample rate and segment length "
                              f"must match; the DB hop may differ)")
    try:
        model = FingerprintEncoder(EncoderConfig.from_dict(payload["model_config"]),
                                   FrontendConfig(**payload["frontend_config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture ({exc})") from exc
    model.eval().to(device)
    return Encoder(model, protocol or saved_protocol, payload.get("record", {}), hashlib.sha256(blob).hexdigest(),
                   path)


def untrained_encoder(protocol: Protocol = Protocol(), config: EncoderConfig = EncoderConfig(),
                      seed: int = 0, device: str = "cpu") -> Encoder:
    """A randomly initialised encoder of the same architecture (the 'no training' reference)."""
    torch.manual_seed(seed)
    model = FingerprintEncoder(config, FrontendConfig(sample_rate=protocol.sample_rate)).eval().to(device)
    blob = checkpoint_bytes(model, protocol, {"trained": False, "seed": seed})
    return Encoder(model, protocol, {"trained": False, "seed": seed}, hashlib.sha256(blob).hexdigest())
