"""Reading audio files as mono float32 at the protocol rate (soundfile + torchaudio resampling)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from datasets.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


class AudioReadError(UserError, RuntimeError):
    """An audio file could not be read; the message names the file."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file, read without decoding it."""

    path: Path
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    """Read an audio file's header; raise AudioReadError naming the file when it is not audio."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for bad files
        raise AudioReadError(f"{path}: cannot read audio header ({exc})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioReadError(f"{path}: no audio frames in file")
    return AudioInfo(path, int(info.frames), int(info.samplerate), int(info.channels))


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio's sinc interpolation; float32 in, float32 out."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(audio, dtype=np.float32)
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), orig_sr, target_sr)
    return out.numpy()


def read_audio(path: Path | str, sample_rate: int) -> np.ndarray:
    """Decode a file to mono float32 at ``sample_rate``; raise AudioReadError naming the file."""
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioReadError(f"{path}: cannot decode audio ({exc})") from exc
    if data.size == 0:
        raise AudioReadError(f"{path}: no audio frames in file")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioReadError(f"{path}: audio holds NaN or infinite samples")
    return resample(mono, int(sr), sample_rate)


def find_audio_files(root: Path | str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """All audio files under ``root`` (recursively), sorted for a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def warn_skip(path: Path | str, reason: str) -> None:
    """Warn that a file is left out, naming it and why."""
    text = reason if str(path) in reason else f"{path}: {reason}"
    warnings.warn(f"skipping {text}", stacklevel=2)
