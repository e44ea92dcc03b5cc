"""A generative model of distractor fingerprints: synthetic *tracks* of segment embeddings, fitted
on real distractor vectors, to fill a scaling run's DB past the real music there is.

A track is its centroid plus a residual that moves along the track:

- **centroids**: a Gaussian mixture (scikit-learn, full covariances, the component count chosen by
  BIC) over the real tracks' mean vectors;
- **residual scale**: log-normal over the real tracks' residual RMS;
- **residual**: in the principal axes of the pooled residuals (scaled per track), each axis a
  stationary Gaussian process whose autocovariance is the one measured on the real tracks out to
  ``max_lag`` segments (flat to half of it, then tapered to zero), drawn by circulant embedding. The measured
  autocovariance carries the 0.1 s hop's structure: neighbouring segments share most of their
  window, so their correlation falls almost linearly over one window, then slowly;
- **length**: drawn from the real tracks' lengths in segments.

Rows are L2-normalised when the real rows are. Track ``i`` of a draw depends only on the seed and
``i`` (NumPy's ``default_rng([seed, i])``), so a store filled in chunks, or resumed, holds the same
rows. The model is fitted on the rows it is given and nothing else: :func:`fit_fingerprint_model`
refuses any row whose source is not a distractor source.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT = 1  # of a saved model; bump it when the model changes: it is in the fitted model's cache key
GAP = 20  # segments: "far apart" in a track, past one window's overlap at the 0.1 s hop (2 s)
SECTION = (20, 160)  # the length of a section that may repeat, in segments
RAMP = 10  # segments over which a repeat fades in and out
REPEAT_SHARES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97)
REPEAT_STRENGTHS = (0.6, 0.8, 0.9, 0.95, 0.98)
RECUR_RANKS = (1, 5, 20)  # the far-apart similarities that say how often a track repeats
SPREADS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # the log-sd of a track's own gains, as tried


@dataclass(frozen=True)
class FingerprintModel:
    """A fitted model (see the module docstring); ``info`` records the fit (rows, tracks, the
    mixture's component count and BIC, seconds taken)."""

    weights: np.ndarray  # [C] mixture weights of the centroid model
    means: np.ndarray  # [C, d]
    chol: np.ndarray  # [C, d, d] Cholesky factors of the component covariances
    log_scale: tuple[float, float]  # mean and sd of log residual RMS per track
    basis: np.ndarray  # [d, d] residual principal axes (columns)
    autocov: np.ndarray  # [max_lag, d] autocovariance per axis, lags 0..max_lag-1, tapered
    lengths: np.ndarray  # [T] real track lengths in segments
    normalise: bool
    repeat: tuple[float, float] = (0.0, 0.0)  # share of sections that repeat an earlier one, and how closely
    spread: float = 0.0  # log-sd of a track's own gains along its own random axes (0: every track alike)
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.means.shape[1])

    def draw_lengths(self, n_rows: int, seed: int) -> np.ndarray:
        """Track lengths (segments) of a draw of ``n_rows`` rows: real lengths drawn with
        replacement until they cover ``n_rows``, the last one cut."""
        rng = np.random.default_rng([seed, 0x1E6])
        out, total = [], 0
        while total < n_rows:
            n = int(rng.choice(self.lengths))
            n = min(n, n_rows - total)
            out.append(n)
            total += n
        return np.asarray(out, dtype=np.int64)

    def track(self, seed: int, number: int, n: int) -> np.ndarray:
        """The ``n`` rows (float32 [n, d]) of synthetic track ``number`` of the draw ``seed``."""
        rng = np.random.default_rng([seed, number])
        comp = rng.choice(len(self.weights), p=self.weights)
        centroid = self.means[comp] + self.chol[comp] @ rng.standard_normal(self.dim)
        scale = float(np.exp(self.log_scale[0] + self.log_scale[1] * rng.standard_normal()))
        z = _repeated(self._own_axes(_stationary(self.autocov, n, rng), rng), rng, *self.repeat)
        rows = centroid[None, :] + scale * (z @ self.basis.T)
        if self.normalise:
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return rows.astype(np.float32)

    def _own_axes(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``z`` with the track's variance concentrated on its own axes: a random rotation, gains
        log-normal with sd ``spread`` (mean 1), rotated back; over many tracks the pooled covariance
        is kept, within one its effective dimension falls as real tracks' does."""
        if self.spread <= 0:
            return z
        d = z.shape[1]
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        gain = np.exp(self.spread * rng.standard_normal(d))
        scale = np.sqrt(np.maximum(self.autocov[0], 1e-12))
        return (((z / scale) @ q) * np.sqrt(gain / gain.mean())) @ q.T * scale

    def sample(self, n_rows: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
        """``n_rows`` synthetic rows and their table (``track``, ``segment``)."""
        lengths = self.draw_lengths(n_rows, seed)
        rows = np.concatenate([self.track(seed, i, int(n)) for i, n in enumerate(lengths)])
        track, segment = track_rows(lengths)
        return rows, pd.DataFrame({"track": track, "segment": segment})

    def save(self, path: Path | str) -> None:
        """Write the model to ``path`` (.npz)."""
        np.savez(path, format=FORMAT, weights=self.weights, means=self.means, chol=self.chol,
                 log_scale=np.asarray(self.log_scale), basis=self.basis, autocov=self.autocov, lengths=self.lengths,
                 normalise=self.normalise, repeat=np.asarray(self.repeat), spread=self.spread,
                 info=json.dumps(self.info))


def load_fingerprint_model(path: Path | str) -> FingerprintModel:
    """A model written by :meth:`FingerprintModel.save`."""
    with np.load(path) as z:
        if int(z["format"]) != FORMAT:
            raise ValueError(f"{path}: fingerprint model format {int(z['format'])}, this code reads {FORMAT}")
        log_scale = (float(z["log_scale"][0]), float(z["log_scale"][1]))
        repeat = (float(z["repeat"][0]), float(z["repeat"][1]))
        return FingerprintModel(z["weights"], z["means"], z["chol"], log_scale, z["basis"], z["autocov"],
                                z["lengths"], bool(z["normalise"]), repeat, float(z["spread"]),
                                json.loads(str(z["info"])))


def track_bounds(tracks: np.ndarray) -> list[tuple[int, int]]:
    """The [start, stop) row range of each track, its rows contiguous in ``tracks`` (one id per row)."""
    tracks = np.asarray(tracks)
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], len(tracks)].tolist()))


def track_rows(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The track number and segment number of every row of tracks of ``lengths`` segments, in order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    track = np.repeat(np.arange(len(lengths)), lengths)
    return track, np.arange(len(track)) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _stationary(autocov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, d] draws of stationary Gaussian processes with autocovariances ``autocov`` [L, d]
    (zero beyond lag L-1), by circulant embedding; negative eigenvalues of the embedding are clipped."""
    lags, d = autocov.shape
    m = 1 << int(np.ceil(np.log2(n + lags)))
    c = np.zeros((m, d))
    c[:lags] = autocov
    c[m - lags + 1:] = autocov[1:][::-1]
    eig = np.clip(np.fft.fft(c, axis=0).real, 0.0, None)
    noise = rng.standard_normal((m, d)) + 1j * rng.standard_normal((m, d))
    return np.fft.fft(np.sqrt(eig / m) * noise, axis=0).real[:n]


def _repeated(z: np.ndarray, rng: np.random.Generator, share: float, strength: float) -> np.ndarray:
    """``z`` [n, d] cut into sections of SECTION segments; a ``share`` of the sections (those
    starting at least GAP segments in) repeat an earlier stretch of the track at least GAP segments
    back: mixed in with weight ``strength``, ramped in and out over RAMP segments, the variance kept."""
    if share <= 0 or strength <= 0:
        return z
    out, n, t = z.copy(), len(z), 0
    while t < n:
        end = min(n, t + int(rng.integers(SECTION[0], SECTION[1] + 1)))
        if t >= GAP and rng.random() < share:
            back = int(rng.integers(GAP, t + 1))
            w = np.full(end - t, strength)
            r = min(RAMP, (end - t) // 2)
            if r:
                w[:r] *= np.linspace(0, 1, r, endpoint=False)
                w[end - t - r:] *= np.linspace(1, 0, r, endpoint=False)
            out[t:end] = np.sqrt(1 - w ** 2)[:, None] * z[t:end] + w[:, None] * out[t - back:end - back]
        t = end
    return out


def recurrence(rows: np.ndarray, tracks: np.ndarray, probes: int = 40, max_tracks: int = 80,
               seed: int = 0) -> np.ndarray:
    """For up to ``probes`` rows of each of up to ``max_tracks`` tracks, the RECUR_RANKS highest cosines
    with rows of the same track at least GAP segments away [probes, len(RECUR_RANKS)]: how strongly,
    and how often, tracks repeat themselves."""
    rng = np.random.default_rng(seed)
    bounds = [(a, b) for a, b in track_bounds(tracks) if b - a > 2 * GAP]
    pick = rng.permutation(len(bounds))[:max_tracks]
    out = []
    for a, b in (bounds[i] for i in pick):
        x = np.asarray(rows[a:b], dtype=np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        idx = rng.choice(b - a, size=min(probes, b - a), replace=False)
        sims = x[idx] @ x.T
        far = np.abs(idx[:, None] - np.arange(b - a)[None, :]) >= GAP
        top = -np.sort(-np.where(far, sims, -np.inf), axis=1)[:, [r - 1 for r in RECUR_RANKS]]
        out.append(top)
    return np.concatenate(out) if out else np.zeros((0, len(RECUR_RANKS)))


def _recurrence_summary(values: np.ndarray) -> np.ndarray:
    """Mean of each rank's similarity, and the share of probes whose best one exceeds 0.9."""
    return np.r_[values.mean(axis=0), (values[:, 0] > 0.9).mean()]


def track_dimension(rows: np.ndarray, tracks: np.ndarray, min_rows: int = 100) -> np.ndarray:
    """Each track's effective dimension: the participation ratio (sum of eigenvalues squared over
    the sum of their squares) of its rows' covariance, for tracks of at least ``min_rows`` rows."""
    out = []
    for a, b in track_bounds(tracks):
        if b - a >= min_rows:
            ev = np.clip(np.linalg.eigvalsh(np.cov(np.asarray(rows[a:b], dtype=np.float64).T)), 0, None)
            out.append(ev.sum() ** 2 / (ev ** 2).sum())
    return np.asarray(out)


def _trial_rows(model: FingerprintModel, seed: int, tracks: int = 60) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.minimum(model.lengths[np.random.default_rng(seed).permutation(len(model.lengths))[:tracks]], 3000)
    rows = np.concatenate([model.track(seed + 7, i, int(n)) for i, n in enumerate(lengths)])
    return rows, track_rows(lengths)[0]


def _fit_spread(model: FingerprintModel, target: float, seed: int) -> tuple[float, dict]:
    """The spread of the grid whose draws' mean track dimension is nearest ``target``'s."""
    scores = {}
    for spread in SPREADS:
        rows, tracks = _trial_rows(replace(model, spread=spread), seed)
        scores[spread] = abs(float(track_dimension(rows, tracks).mean()) - target)
    best = min(scores, key=scores.get)
    return best, {"track_dimension_target": round(target, 2), "spread": best}


def _fit_repeat(model: FingerprintModel, target: np.ndarray, seed: int) -> tuple[tuple[float, float], dict]:
    """The (share, strength) of the grid whose draws' recurrence summary is nearest ``target``'s."""
    want = _recurrence_summary(target)
    scores = {}
    for share in REPEAT_SHARES:
        for strength in REPEAT_STRENGTHS:
            rows, tracks = _trial_rows(replace(model, repeat=(share, strength)), seed)
            got = _recurrence_summary(recurrence(rows, tracks, seed=seed))
            scores[(share, strength)] = float(((got - want) ** 2).sum())
    best = min(scores, key=scores.get)
    return best, {"repeat_target": [round(float(v), 4) for v in want], "repeat_share": best[0],
                  "repeat_strength": best[1]}


def _autocov(tracks: list[np.ndarray], max_lag: int) -> np.ndarray:
    """Pooled within-track autocovariance [max_lag, d] of zero-mean sequences."""
    d = tracks[0].shape[1]
    sums, counts = np.zeros((max_lag, d)), np.zeros(max_lag)
    for z in tracks:
        n = len(z)
        m = 1 << int(np.ceil(np.log2(2 * n)))
        f = np.fft.rfft(z, n=m, axis=0)
        acf = np.fft.irfft(f * np.conj(f), n=m, axis=0)[:max_lag]
        k = min(max_lag, n)
        sums[:k] += acf[:k]
        counts[:k] += n - np.arange(k)
    cov = sums / np.maximum(counts, 1)[:, None]
    half = max_lag // 2
    taper = np.ones(max_lag)  # flat to max_lag / 2, then a half cosine to zero at max_lag
    taper[half:] = 0.5 * (1 + np.cos(np.pi * np.arange(max_lag - half) / (max_lag - half)))
    return cov * taper[:, None]


def fit_fingerprint_model(rows: np.ndarray, tracks: np.ndarray, sources: np.ndarray, distractor_sources: set[str],
                          seed: int = 0, max_lag: int = 256, components: tuple[int, ...] = (1, 2, 4, 8),
                          ) -> FingerprintModel:
    """Fit the model on ``rows`` [n, d], grouped into tracks by ``tracks`` [n] (each track's rows
    contiguous and in segment order). Every row's ``sources`` entry must be one of
    ``distractor_sources``: a query track's rows, or any corpus row, are refused."""
    from sklearn.mixture import GaussianMixture

    t0 = time.perf_counter()
    rows = np.asarray(rows, dtype=np.float64)
    tracks, sources = np.asarray(tracks), np.asarray(sources).astype(str)
    bad = sorted(set(sources.tolist()) - set(distractor_sources))
    if bad:
        raise ValueError(f"fingerprint model: rows from source(s) {bad} given; it is fitted on distractor rows only "
                         f"({sorted(distractor_sources)})")
    bounds = track_bounds(tracks)
    if len({tracks[a] for a, _ in bounds}) != len(bounds):
        raise ValueError("fingerprint model: a track's rows are not contiguous")
    bounds = [(a, b) for a, b in bounds if b - a >= 2]
    if len(bounds) < 2:
        raise ValueError(f"fingerprint model: needs at least 2 tracks of 2 or more segments, got {len(bounds)}")
    centroids = np.stack([rows[a:b].mean(axis=0) for a, b in bounds])
    residuals = [rows[a:b] - c for (a, b), c in zip(bounds, centroids)]
    scales = np.array([np.sqrt((r ** 2).sum(axis=1).mean()) for r in residuals])
    scaled = [r / s for r, s in zip(residuals, scales)]
    pooled = np.concatenate(scaled)
    _, vecs = np.linalg.eigh(pooled.T @ pooled / len(pooled))
    basis = vecs[:, ::-1]
    autocov = _autocov([z @ basis for z in scaled], max_lag)

    fits = []
    for c in components:
        if c > len(centroids) // 2:
            continue
        gm = GaussianMixture(c, covariance_type="full", reg_covar=1e-4, random_state=seed, n_init=2)
        gm.fit(centroids)
        fits.append((gm.bic(centroids), c, gm))
    bic, n_comp, gm = min(fits, key=lambda f: f[0])
    chol = np.linalg.cholesky(gm.covariances_)
    norms = np.linalg.norm(rows, axis=1)
    info = {"rows": int(sum(b - a for a, b in bounds)), "tracks": len(bounds), "components": int(n_comp),
            "bic": {str(c): round(float(b), 1) for b, c, _ in fits}, "max_lag": max_lag, "seed": seed}
    model = FingerprintModel(gm.weights_, gm.means_, chol,
                             (float(np.log(scales).mean()), float(np.log(scales).std())), basis, autocov,
                             np.array([b - a for a, b in bounds]), bool(np.allclose(norms, 1.0, atol=1e-3)))
    spread, spread_info = _fit_spread(model, float(track_dimension(rows, tracks).mean()), seed)
    model = replace(model, spread=spread)
    repeat, repeat_info = _fit_repeat(model, recurrence(rows, tracks, seed=seed), seed)
    info.update(spread_info, **repeat_info, fit_seconds=round(time.perf_counter() - t0, 2))
    return replace(model, repeat=repeat, info=info)
