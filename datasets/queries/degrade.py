"""Query degradation: an excerpt, transformed (tempo, pitch, speed), convolved with a room response,
mixed with noise at an exact SNR, and passed through a channel (codec, phone line)."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from .transforms import NONE, apply_transform, is_source_transform, source_samples

SILENCE_ENERGY = 1e-12


def reverberate(track: np.ndarray, start: int, n: int, rir: np.ndarray) -> np.ndarray:
    """The reverberant version of ``track[start:start+n]``.

    The RIR's direct path is at sample 0, so timing is kept; audio before ``start`` feeds the
    reverberant tail exactly as it would in the room.
    """
    context = min(start, len(rir) - 1)
    x = torch.from_numpy(np.ascontiguousarray(track[start - context:start + n], dtype=np.float32))
    wet = AF.fftconvolve(x, torch.from_numpy(np.ascontiguousarray(rir, dtype=np.float32)))
    return wet[context:context + n].numpy()


def noise_excerpt(noise: np.ndarray, offset: int, n: int) -> np.ndarray:
    """``n`` samples of a noise clip from ``offset``, wrapping around when the clip is shorter."""
    idx = (offset + np.arange(n)) % len(noise)
    return noise[idx].astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` plus ``noise`` scaled so that 10*log10(E_signal / E_noise) equals ``snr_db``."""
    if float(np.sum(np.square(signal, dtype=np.float64))) < SILENCE_ENERGY:
        raise ValueError("cannot mix at an SNR: the signal is silent")
    if float(np.sum(np.square(noise, dtype=np.float64))) < SILENCE_ENERGY:
        raise ValueError("cannot mix at an SNR: the noise is silent")
    out = AF.add_noise(torch.from_numpy(signal.astype(np.float32)),
                       torch.from_numpy(noise.astype(np.float32)),
                       torch.tensor(float(snr_db)))
    return out.numpy()


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of ``noisy`` against the clean signal it was made from, in dB."""
    clean64 = clean.astype(np.float64)
    resid = noisy.astype(np.float64) - clean64
    e_noise = float(np.sum(resid * resid))
    if e_noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(float(np.sum(clean64 * clean64)) / e_noise)


def transformed_excerpt(track: np.ndarray, start: int, n: int, transform: str, sample_rate: int,
                        context: int) -> tuple[np.ndarray, int]:
    """The source transform of ``track`` from ``start``, ``n`` samples long after it, with up to
    ``context`` output samples of the music before it (a room's tail needs them); returns the
    audio and where the excerpt starts in it."""
    n_src = source_samples(transform, n)
    ctx_src = min(start, source_samples(transform, context))
    ctx = int(round(ctx_src * n / n_src))
    out = apply_transform(transform, track[start - ctx_src:start + n_src].astype(np.float32), sample_rate, ctx + n)
    return out, ctx


def degrade(track: np.ndarray, start: int, n: int, rir: np.ndarray | None = None,
            noise: np.ndarray | None = None, noise_offset: int = 0,
            snr_db: float | None = None, transform: str = NONE,
            sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one query of ``n`` samples: returns (degraded audio, the reverberant clean reference it
    was mixed from).

    A source transform (tempo, pitch, speed) acts on the music from ``start`` (reading
    ``source_samples(transform, n)`` samples of it) before the room; a channel transform (codec,
    phone line) acts on the mix. ``sample_rate`` is needed for any transform.
    """
    n_src = source_samples(transform, n)
    if start < 0 or start + n_src > len(track):
        raise ValueError(f"excerpt [{start}, {start + n_src}) is outside the track of {len(track)} samples")
    if transform != NONE and sample_rate is None:
        raise ValueError(f"transform {transform!r} needs the sample rate")
    if is_source_transform(transform):
        track, start = transformed_excerpt(track, start, n, transform, sample_rate,
                                           len(rir) - 1 if rir is not None else 0)
    wet = reverberate(track, start, n, rir) if rir is not None else track[start:start + n].astype(np.float32)
    if snr_db is None:
        mixed = wet.copy()
    elif noise is None:
        raise ValueError("an SNR was given without a noise clip")
    else:
        mixed = mix_at_snr(wet, noise_excerpt(noise, noise_offset, n), snr_db)
    if transform != NONE and not is_source_transform(transform):
        mixed = apply_transform(transform, mixed, sample_rate, n)
    return mixed, wet
