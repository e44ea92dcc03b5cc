"""The flow's forward pass (data -> latent) as one compiled (numba) function over the weights of
``NumpyFlow``, the reference it must agree with (to float32 rounding; tests check the latents and
the sign codes).

For the query of a few segments a search hashes, the NumPy replay spends most of its time in the
per-call overhead of ~150 small array operations; here each coupling is loops over the same
float32 arrays: ActNorm, the conditioner's ResidualNet (initial layer, ReLU blocks, final layer),
the sigmoid scale and shift of the transformed half, then the permutation. Batches of more than
``MAX_COMPILED_ROWS`` rows (the DB at build, a batched search) go to the NumPy replay instead,
whose BLAS matrix products are the faster there (about 10 us a row against 20).
"""
from __future__ import annotations

import numba
import numpy as np

from methods.flow.inference import NumpyFlow

MAX_COMPILED_ROWS = 48  # above this many rows NumPy's BLAS beats the loops (measured on 2-core x86)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dense(x: np.ndarray, w: np.ndarray, b: np.ndarray, out: np.ndarray, relu_in: bool) -> None:
    """out[r] = relu?(x[r]) @ w + b, w stored [in, out]."""
    n_in, n_out = w.shape
    for r in range(x.shape[0]):
        for j in range(n_out):
            out[r, j] = b[j]
    for i in range(n_in):  # each weight row once for all rows of x
        for r in range(x.shape[0]):
            v = x[r, i]
            if relu_in and v < 0:
                continue
            for j in range(n_out):
                out[r, j] += v * w[i, j]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _forward(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, n_id: np.ndarray, identity: np.ndarray,
             n_tr: np.ndarray, transform: np.ndarray, permutation: np.ndarray, w_in: np.ndarray, b_in: np.ndarray,
             w_blocks: np.ndarray, b_blocks: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> np.ndarray:
    n, width = x.shape
    n_steps, max_id, hidden = w_in.shape
    max_tr = transform.shape[1]
    z = x.copy()
    y = np.empty_like(z)
    h = np.empty((n, hidden), dtype=np.float32)
    a = np.empty((n, hidden), dtype=np.float32)
    g = np.empty((n, hidden), dtype=np.float32)
    params = np.empty((n, 2 * max_tr), dtype=np.float32)
    # columns past a coupling's n_id keep earlier values, finite, and meet its zero-padded weight rows
    x_id = np.zeros((n, max_id), dtype=np.float32)
    for c in range(n_steps):
        for r in range(n):
            for j in range(width):
                z[r, j] = z[r, j] * scale[c, j] + shift[c, j]
            for j in range(n_id[c]):
                x_id[r, j] = z[r, identity[c, j]]
        _dense(x_id, w_in[c], b_in[c], h, False)
        for blk in range(w_blocks.shape[1] // 2):
            _dense(h, w_blocks[c, 2 * blk], b_blocks[c, 2 * blk], a, True)
            _dense(a, w_blocks[c, 2 * blk + 1], b_blocks[c, 2 * blk + 1], g, True)
            for r in range(n):
                for j in range(hidden):
                    h[r, j] += g[r, j]
        _dense(h, w_out[c], b_out[c], params, False)  # shifts in [:max_tr], raw scales in [max_tr:]
        for r in range(n):
            for j in range(n_id[c]):
                y[r, identity[c, j]] = x_id[r, j]
            for j in range(n_tr[c]):
                s = 0.5 * (1.0 + np.tanh(0.5 * (params[r, max_tr + j] + 2.0))) + 1e-3
                y[r, transform[c, j]] = z[r, transform[c, j]] * s + params[r, j]
            for j in range(width):
                z[r, j] = y[r, permutation[c, j]]
    return z


class CompiledFlow:
    """A ``NumpyFlow``'s forward pass as one numba function; same call signature."""

    def __init__(self, flow: NumpyFlow) -> None:
        """Stack the weights of every coupling of ``flow``; couplings of an odd width, whose halves
        alternate in size, are zero-padded to the larger half."""
        self.reference = flow
        steps = flow.steps
        if not steps:
            raise ValueError("a compiled flow needs at least one coupling")
        if len({(s.n_blocks, s.layers[0][0].shape[1]) for s in steps}) != 1:
            raise ValueError("couplings with different conditioner depths or widths cannot be stacked")
        width = steps[0].scale.size
        max_id = max(s.identity.size for s in steps)
        max_tr = max(s.transform.size for s in steps)

        def pad(a: np.ndarray, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
            out = np.zeros(shape, dtype=dtype)
            out[tuple(slice(0, n) for n in a.shape)] = a
            return out

        def stack(arrays: list[np.ndarray], dtype: type = np.float32) -> np.ndarray:
            return np.ascontiguousarray(np.stack(arrays), dtype=dtype)

        n_blocks = steps[0].n_blocks
        hidden = steps[0].layers[0][0].shape[1]
        self.scale = stack([s.scale.reshape(width) for s in steps])
        self.shift = stack([s.shift.reshape(width) for s in steps])
        self.n_id = np.array([s.identity.size for s in steps], dtype=np.int64)
        self.identity = stack([pad(s.identity, (max_id,), np.int64) for s in steps], np.int64)
        self.n_tr = np.array([s.transform.size for s in steps], dtype=np.int64)
        self.transform = stack([pad(s.transform, (max_tr,), np.int64) for s in steps], np.int64)
        self.permutation = stack([np.arange(width) if s.permutation is None else s.permutation for s in steps],
                                 np.int64)
        self.w_in = stack([pad(s.layers[0][0], (max_id, hidden)) for s in steps])
        self.b_in = stack([s.layers[0][1] for s in steps])
        self.w_blocks = stack([np.stack([w for w, _ in s.layers[1:1 + 2 * n_blocks]]) if n_blocks else
                               np.zeros((0, hidden, hidden), np.float32) for s in steps])
        self.b_blocks = stack([np.stack([b for _, b in s.layers[1:1 + 2 * n_blocks]]) if n_blocks else
                               np.zeros((0, hidden), np.float32) for s in steps])
        w_out, b_out = [], []
        for s in steps:
            w, b = s.layers[-1]
            n = s.transform.size
            wo, bo = np.zeros((hidden, 2 * max_tr), np.float32), np.zeros(2 * max_tr, np.float32)
            wo[:, :n], wo[:, max_tr:max_tr + n] = w[:, :n], w[:, n:]
            bo[:n], bo[max_tr:max_tr + n] = b[:n], b[n:]
            w_out.append(wo)
            b_out.append(bo)
        self.w_out, self.b_out = stack(w_out), stack(b_out)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Latent of ``x`` [n, K] (float32)."""
        if x.shape[0] > MAX_COMPILED_ROWS:
            return self.reference(x)
        return _forward(np.ascontiguousarray(x, dtype=np.float32), self.scale, self.shift, self.n_id, self.identity,
                        self.n_tr, self.transform, self.permutation, self.w_in, self.b_in, self.w_blocks,
                        self.b_blocks, self.w_out, self.b_out)
