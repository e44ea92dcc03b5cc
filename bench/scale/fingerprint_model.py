"""A generative model of distractor fingerprints: synthetic *tracks* of segment embeddings, fitted
on real distractor vectors, to fill a scaling run's DB past the real music there is.

A track walks over **states** shared by all tracks (a hidden semi-Markov model), plus a residual that
moves smoothly along it:

- **states**: k-means clusters of the real rows (faiss, up to 1024, at least ROWS_PER_DIM rows per
  dimension each): the rows' clusters shared across tracks, which is what fills a hash bucket or
  an IVF cell. A model whose rows are one Gaussian per track spreads them evenly over sign buckets;
  the real rows are not spread so (docs/fidelity.md);
- **which states a track visits**: a home state drawn by the states' weights, then a palette,
  Dirichlet around the state shares of the real tracks that visit the home state, its
  concentration fitted so that tracks keep to as few states as real tracks do;
- **how it moves**: runs of one state, their lengths drawn from the real tracks' runs; the next
  state in proportion to the palette times the real moves out of the state left;
- **the row**: the path of state means, smoothed along the track by a Gaussian kernel (so that a
  change of state is not a jump; its width, of SMOOTHS, fitted to the real similarities
  SMOOTH_LAGS hops apart: a sharp path keeps the clusters, a smooth one the continuity), plus a
  residual: in the principal axes of the real rows' residuals from their own smoothed path, each
  axis a stationary Gaussian process with the autocovariance measured there out to ``max_lag``
  segments (flat to half of it, then tapered to zero), drawn by circulant embedding, scaled by
  each state's residual RMS; it carries the 0.1 s hop's structure (neighbouring segments share
  most of their window);
- **each state's own shape of residual**: the residual coloured by its state's covariance (of the
  real residuals in that state, shrunk towards the pooled one by d / (rows + d)), blended across a
  change of state by the path's kernel: real rows vary along a few directions in each region of
  the space, not along the pooled axes, which is what brings the nearest rows of *other* tracks
  as close as real music's (``other_track_1`` in fingerprint_stats);
- **a track's own axes** and **repeats**: the residual's variance concentrated on a track's own
  random axes (their spread fitted to the real tracks' effective dimension), and sections that
  repeat an earlier stretch of the track, states and residual (share and strength fitted to the
  real tracks' far-apart similarities);
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

from .fingerprint_stats import lag_cosine

FORMAT = 3  # of a saved model; bump it when the model changes: it is in the fitted model's cache key
GAP = 20  # segments: "far apart" in a track, past one window's overlap at the 0.1 s hop (2 s)
SECTION = (20, 160)  # the length of a section that may repeat, in segments
RAMP = 10  # segments over which a repeat fades in and out
REPEAT_SHARES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97)
REPEAT_STRENGTHS = (0.6, 0.8, 0.9, 0.95, 0.98)
RECUR_RANKS = (1, 5, 20)  # the far-apart similarities that say how often a track repeats
SPREADS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # the log-sd of a track's own gains, as tried
CONCENTRATIONS = (0.25, 0.5, 1.0, 2.0, 4.0)  # multiples of the moment estimate of the palette concentration, as tried
SMOOTHS = (0.5, 1.0, 2.0, 4.0, 8.0)  # segments: the sd of the kernel smoothing a track's path of state means, as tried
SMOOTH_LAGS = (1, 2, 5)  # the lags whose similarities the smoothing is fitted to
TRIAL_SEGMENTS = 3000  # the longest track drawn while fitting a parameter on its grid
ROWS_PER_DIM = 4  # a state is given at least this many rows per dimension on average (its covariance is full)


@dataclass(frozen=True)
class FingerprintModel:
    """A fitted model (see the module docstring); ``info`` records the fit (rows, tracks, states,
    the fitted parameters' targets, seconds taken)."""

    weights: np.ndarray  # [S] share of the real rows in each state
    means: np.ndarray  # [S, d]
    moves: np.ndarray  # [S, S] real moves from one state to another (counts, the diagonal zero)
    together: np.ndarray  # [S, S] row s: the state shares of the real tracks that visit s, weighted by their share of s
    concentration: float  # of a track's palette: Dirichlet(concentration * together[home])
    dwell: np.ndarray  # [R] real run lengths (segments) in one state
    smooth: float  # sd (segments) of the Gaussian kernel that smooths the state means' path
    scales: np.ndarray  # [S] each state's residual RMS over the pooled one
    basis: np.ndarray  # [d, d] the residual's principal axes (columns)
    autocov: np.ndarray  # [max_lag, d] autocovariance of the residual along each axis, tapered
    lengths: np.ndarray  # [T] real track lengths in segments
    normalise: bool
    repeat: tuple[float, float] = (0.0, 0.0)  # share of sections that repeat an earlier one, and how closely
    spread: float = 0.0  # log-sd of a track's own gains along its own random axes (0: every track alike)
    colour: np.ndarray | None = None  # [S, d, d] each state's residual colouring, whitened pooled axes (None: pooled)
    info: dict = field(default_factory=dict)

    @property
    def pooled_sd(self) -> np.ndarray:
        """[d] the residual's pooled standard deviation along each principal axis."""
        return np.sqrt(np.maximum(self.autocov[0], 1e-12))

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

    def states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The state of each of a track's ``n`` segments: runs of dwell lengths; the first run's state
        drawn from the track's palette, each next one in proportion to the palette times the real
        moves out of the state it leaves (the palette alone where those meet nowhere)."""
        home = int(rng.choice(len(self.weights), p=self.weights))
        palette = _palette(self.together[home], self.concentration, rng)
        out = np.empty(n, dtype=np.int64)
        t, state = 0, -1
        while t < n:
            p = palette if state < 0 else palette * self.moves[state]
            if p.sum() <= 0:
                p = palette
            state = int(rng.choice(len(p), p=p / p.sum()))
            run = int(rng.choice(self.dwell))
            out[t:t + run] = state
            t += run
        return out

    def track(self, seed: int, number: int, n: int) -> np.ndarray:
        """The ``n`` rows (float32 [n, d]) of synthetic track ``number`` of the draw ``seed``."""
        rng = np.random.default_rng([seed, number])
        states = self.states(n, rng)
        z = self._own_axes(_stationary(self.autocov, n, rng), rng)
        z, source = _repeated(z, rng, *self.repeat)
        states = states[source]
        scale = state_path(self.scales[:, None], states, self.smooth)
        z = self._coloured(z, states)
        rows = state_path(self.means, states, self.smooth) + scale * (z @ self.basis.T)
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
        scale = self.pooled_sd
        return (((z / scale) @ q) * np.sqrt(gain / gain.mean())) @ q.T * scale

    def _coloured(self, z: np.ndarray, states: np.ndarray) -> np.ndarray:
        """``z`` [n, d] (pooled axes) coloured by each row's state: whitened, multiplied by the
        state's colouring, the states' results blended by the path's kernel, the pooled scale back."""
        if self.colour is None:
            return z
        sd = self.pooled_sd
        white = z / sd
        out = np.zeros_like(z)
        for s in np.unique(states):
            weight = state_path(np.array([[0.0], [1.0]]), (states == s).astype(np.int64), self.smooth)[:, 0]
            rows = np.flatnonzero(weight > 1e-4)
            out[rows] += weight[rows, None] * (white[rows] @ self.colour[s].T)
        return out * sd

    def sample(self, n_rows: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
        """``n_rows`` synthetic rows and their table (``track``, ``segment``)."""
        lengths = self.draw_lengths(n_rows, seed)
        rows = np.concatenate([self.track(seed, i, int(n)) for i, n in enumerate(lengths)])
        track, segment = track_rows(lengths)
        return rows, pd.DataFrame({"track": track, "segment": segment})

    def save(self, path: Path | str) -> None:
        """Write the model to ``path`` (.npz)."""
        np.savez(path, format=FORMAT, weights=self.weights, means=self.means, moves=self.moves,
                 together=self.together, concentration=self.concentration, dwell=self.dwell, smooth=self.smooth,
                 scales=self.scales, basis=self.basis, autocov=self.autocov, lengths=self.lengths,
                 normalise=self.normalise, repeat=np.asarray(self.repeat), spread=self.spread,
                 colour=np.zeros((0, 0, 0), np.float32) if self.colour is None else self.colour,
                 info=json.dumps(self.info))


def load_fingerprint_model(path: Path | str) -> FingerprintModel:
    """A model written by :meth:`FingerprintModel.save`."""
    with np.load(path) as z:
        if int(z["format"]) != FORMAT:
            raise ValueError(f"{path}: fingerprint model format {int(z['format'])}, this code reads {FORMAT}")
        repeat = (float(z["repeat"][0]), float(z["repeat"][1]))
        return FingerprintModel(z["weights"], z["means"], z["moves"], z["together"], float(z["concentration"]),
                                z["dwell"], float(z["smooth"]), z["scales"], z["basis"], z["autocov"], z["lengths"],
                                bool(z["normalise"]), repeat, float(z["spread"]),
                                z["colour"] if z["colour"].size else None, json.loads(str(z["info"])))


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


def state_path(means: np.ndarray, states: np.ndarray, smooth: float) -> np.ndarray:
    """The path of one track's state means [n, d], smoothed along the track by a Gaussian kernel of
    sd ``smooth`` segments (cut at 3 sd, renormalised at the track's ends)."""
    path = np.asarray(means[states], dtype=np.float64)
    half = int(np.ceil(3 * smooth))
    if half < 1 or len(path) < 2:
        return path
    from scipy.ndimage import convolve1d

    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / smooth) ** 2)
    weight = convolve1d(np.ones(len(path)), kernel, mode="constant")
    return convolve1d(path, kernel, axis=0, mode="constant") / weight[:, None]


def _palette(weights: np.ndarray, concentration: float, rng: np.random.Generator) -> np.ndarray:
    """A track's share of each state: Dirichlet(concentration * weights), by normalised gammas (a
    state whose gamma underflows gets none; where all do, ``weights`` itself)."""
    g = rng.standard_gamma(np.maximum(concentration * weights, 1e-300))
    return g / g.sum() if g.sum() > 0 else np.asarray(weights, dtype=np.float64)


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


def _repeated(z: np.ndarray, rng: np.random.Generator, share: float,
              strength: float) -> tuple[np.ndarray, np.ndarray]:
    """``z`` [n, d] cut into sections of SECTION segments; a ``share`` of the sections (those
    starting at least GAP segments in) repeat an earlier stretch of the track at least GAP segments
    back: mixed in with weight ``strength``, ramped in and out over RAMP segments, the variance kept.
    With it, the row each row repeats (its own index where it repeats none, or weakly): a repeated
    row takes that row's state."""
    source = np.arange(len(z))
    if share <= 0 or strength <= 0:
        return z, source
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
            strong = w >= 0.5
            source[t:end][strong] = source[t - back:end - back][strong]
        t = end
    return out, source


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


def palette_purity(states: np.ndarray, tracks: np.ndarray) -> float:
    """Mean over tracks of the sum of squared state shares: 1 when each track stays in one state."""
    out = []
    for a, b in track_bounds(tracks):
        share = np.bincount(states[a:b]) / (b - a)
        out.append(float((share ** 2).sum()))
    return float(np.mean(out))


def _trial_rows(model: FingerprintModel, seed: int, tracks: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Draws of up to ``tracks`` tracks, of real lengths cut at TRIAL_SEGMENTS, for the fits' grids."""
    pick = np.random.default_rng(seed).permutation(len(model.lengths))[:tracks]
    lengths = np.minimum(model.lengths[pick], TRIAL_SEGMENTS)
    rows = np.concatenate([model.track(seed + 7, i, int(n)) for i, n in enumerate(lengths)])
    return rows, track_rows(lengths)[0]


def _residual_process(rows: np.ndarray, tracks: np.ndarray, means: np.ndarray, labels: np.ndarray, smooth: float,
                      max_lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each state's residual RMS over the pooled one; and, of the rows' residuals from their
    tracks' smoothed state-mean paths divided by their smoothed state scales, the principal axes,
    the autocovariance along each axis [max_lag, d], and each state's colouring (:func:`_colours`)."""
    bounds = track_bounds(tracks)
    residual = np.concatenate([rows[a:b] - state_path(means, labels[a:b], smooth) for a, b in bounds])
    power = (residual ** 2).sum(axis=1)
    counts = np.bincount(labels, minlength=len(means))
    scales = np.sqrt(np.bincount(labels, power, minlength=len(means)) / np.maximum(counts, 1) / power.mean())
    scales = np.where(counts > 0, scales, 1.0)
    residual /= np.concatenate([state_path(scales[:, None], labels[a:b], smooth) for a, b in bounds])
    _, vecs = np.linalg.eigh(residual.T @ residual / len(residual))
    basis = vecs[:, ::-1]
    autocov = _autocov([residual[a:b] @ basis for a, b in bounds], max_lag)
    white = (residual @ basis) / np.sqrt(np.maximum(autocov[0], 1e-12))
    return scales, basis, autocov, _colours(white, labels, len(means))


def _colours(white: np.ndarray, labels: np.ndarray, n_states: int) -> np.ndarray:
    """Each state's colouring [S, d, d]: the symmetric square root of the covariance of its rows'
    whitened residuals (the identity for the pooled one), shrunk towards the identity by d / (rows + d)."""
    d = white.shape[1]
    out = np.empty((n_states, d, d), dtype=np.float32)
    order = np.argsort(labels, kind="stable")  # each state's rows once, in their own order
    edges = np.searchsorted(labels[order], np.arange(n_states + 1))
    for s in range(n_states):
        x = white[order[edges[s]:edges[s + 1]]]
        cov = x.T @ x / len(x) if len(x) else np.eye(d)
        shrink = d / (len(x) + d)
        vals, vecs = np.linalg.eigh((1 - shrink) * cov + shrink * np.eye(d))
        out[s] = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    return out


def _fit_smooth(model: FingerprintModel, rows: np.ndarray, tracks: np.ndarray, labels: np.ndarray,
                seed: int) -> tuple[FingerprintModel, dict]:
    """The smoothing of SMOOTHS, with its residual process, whose draws' similarities at
    SMOOTH_LAGS are nearest the real rows': a sharp path keeps the states' clusters, a smooth one
    the short-lag continuity that a change of state breaks."""
    want = np.array(list(lag_cosine(rows, tracks, SMOOTH_LAGS).values()))
    scores, fits = {}, {}
    for smooth in SMOOTHS:
        scales, basis, autocov, colour = _residual_process(rows, tracks, model.means, labels, smooth,
                                                           len(model.autocov))
        fits[smooth] = replace(model, smooth=smooth, scales=scales, basis=basis, autocov=autocov, colour=colour)
        trial, trial_tracks = _trial_rows(fits[smooth], seed)
        got = np.array(list(lag_cosine(trial, trial_tracks, SMOOTH_LAGS).values()))
        scores[smooth] = float(((got - want) ** 2).sum())
    best = min(scores, key=scores.get)
    return fits[best], {"smooth_target": [round(float(v), 4) for v in want], "smooth": best}


def _fit_concentration(model: FingerprintModel, target: float, seed: int) -> tuple[float, dict]:
    """The palette concentration whose drawn state walks' purity is nearest ``target``'s: the
    Dirichlet moment estimate, then the multiple of it among CONCENTRATIONS that matches best."""
    w2 = float(model.weights @ (model.together ** 2).sum(axis=1))
    base = (1 - target) / max(target - w2, 1e-6)
    lengths = np.minimum(model.lengths, TRIAL_SEGMENTS)
    scores = {}
    for k in CONCENTRATIONS:
        trial = replace(model, concentration=base * k)
        walks = [trial.states(int(n), np.random.default_rng([seed, i])) for i, n in enumerate(lengths)]
        scores[base * k] = abs(palette_purity(np.concatenate(walks), track_rows(lengths)[0]) - target)
    best = min(scores, key=scores.get)
    return best, {"purity_target": round(target, 4), "concentration": round(best, 3)}


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


def _fit_states(rows: np.ndarray, n_states: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means states of ``rows``: their weights, means and each row's state."""
    import faiss

    d = rows.shape[1]
    x = np.ascontiguousarray(rows, dtype=np.float32)
    if n_states > 1:
        km = faiss.Kmeans(d, n_states, niter=20, seed=seed + 1, verbose=False, max_points_per_centroid=1 << 20)
        km.train(x)
        labels = km.index.search(x, 1)[1][:, 0]
    else:
        labels = np.zeros(len(x), dtype=np.int64)
    counts = np.bincount(labels, minlength=n_states)
    keep = np.flatnonzero(counts)
    remap = np.cumsum(counts > 0) - 1
    labels = remap[labels]
    means = np.stack([np.asarray(rows[labels == s], dtype=np.float64).mean(axis=0) for s in range(len(keep))])
    return counts[keep] / counts.sum(), means, labels


def fit_fingerprint_model(rows: np.ndarray, tracks: np.ndarray, sources: np.ndarray, distractor_sources: set[str],
                          seed: int = 0, max_lag: int = 256, states: int = 1024) -> FingerprintModel:
    """Fit the model on ``rows`` [n, d], grouped into tracks by ``tracks`` [n] (each track's rows
    contiguous and in segment order), with up to ``states`` states (fewer where the rows give fewer
    than ROWS_PER_DIM rows per dimension each). Every row's ``sources`` entry must be one of
    ``distractor_sources``: a query track's rows, or any corpus row, are refused."""
    t0 = time.perf_counter()
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
    keep = np.concatenate([np.arange(a, b) for a, b in bounds])
    rows, tracks = np.asarray(rows)[keep], tracks[keep]
    bounds = track_bounds(tracks)
    d = rows.shape[1]
    n_states = int(max(1, min(states, len(rows) // (ROWS_PER_DIM * d))))
    weights, means, labels = _fit_states(rows, n_states, seed)
    runs = [np.diff(np.flatnonzero(np.r_[True, labels[a + 1:b] != labels[a:b - 1], True])) for a, b in bounds]
    dwell = np.concatenate(runs)
    occ = np.stack([np.bincount(labels[a:b], minlength=len(weights)) / (b - a) for a, b in bounds])
    together = occ.T @ occ
    together /= np.maximum(together.sum(axis=1, keepdims=True), 1e-12)
    moved = np.r_[labels[1:] != labels[:-1]] & (tracks[1:] == tracks[:-1])
    moves = np.zeros((len(weights), len(weights)))
    np.add.at(moves, (labels[:-1][moved], labels[1:][moved]), 1.0)
    norms = np.linalg.norm(rows, axis=1)
    info = {"rows": len(rows), "tracks": len(bounds), "states": len(weights), "max_lag": max_lag, "seed": seed,
            "mean_dwell": round(float(dwell.mean()), 2)}
    w2 = float(weights @ (together ** 2).sum(axis=1))
    purity = palette_purity(labels, tracks)
    model = FingerprintModel(weights, means, moves, together, (1 - purity) / max(purity - w2, 1e-6), dwell, 0.0,
                             np.ones(len(weights)), np.eye(d), np.zeros((max_lag, d)),
                             np.array([b - a for a, b in bounds]), bool(np.allclose(norms, 1.0, atol=1e-3)))
    model, smooth_info = _fit_smooth(model, rows, tracks, labels, seed)
    concentration, conc_info = _fit_concentration(model, purity, seed)
    model = replace(model, concentration=concentration)
    spread, spread_info = _fit_spread(model, float(track_dimension(rows, tracks).mean()), seed)
    model = replace(model, spread=spread)
    repeat, repeat_info = _fit_repeat(model, recurrence(rows, tracks, seed=seed), seed)
    info.update(smooth_info, **conc_info, **spread_info, **repeat_info, fit_seconds=round(time.perf_counter() - t0, 2))
    return replace(model, repeat=repeat, info=info)
