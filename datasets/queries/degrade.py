"""Query degradation: an excerpt, convolved with a room response, mixed with noise at an exact SNR."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

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


def degrade(track: np.ndarray, start: int, n: int, rir: np.ndarray | None = None,
            noise: np.ndarray | None = None, noise_offset: int = 0,
            snr_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one query: returns (degraded audio, the reverberant clean reference it was mixed from)."""
    if start < 0 or start + n > len(track):
        raise ValueError(f"excerpt [{start}, {start + n}) is outside the track of {len(track)} samples")
    wet = reverberate(track, start, n, rir) if rir is not None else track[start:start + n].astype(np.float32)
    if snr_db is None:
        return wet.copy(), wet
    if noise is None:
        raise ValueError("an SNR was given without a noise clip")
    return mix_at_snr(wet, noise_excerpt(noise, noise_offset, n), snr_db), wet
