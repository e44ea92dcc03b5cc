"""Fixed linear projection d -> K: PCA (whitened by default) fitted on train embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PCAWhitening:
    """x -> (x - mean) @ matrix; the top-K principal axes, each scaled to standard deviation ``scale``
    (or, with ``whiten=False``, left at its own variance)."""

    mean: np.ndarray    # [d] float32
    matrix: np.ndarray  # [d, K] float32

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int, scale: float = 1.0, whiten: bool = True) -> "PCAWhitening":
        """Fit on ``x`` [n, d]; axes sorted by variance, each axis's sign fixed (largest entry positive).

        ``whiten=False`` keeps the plain orthonormal PCA axes (``scale`` is then ignored)."""
        x64 = np.asarray(x, dtype=np.float64)
        mean = x64.mean(axis=0)
        cov = np.cov(x64 - mean, rowvar=False)
        eigvals, eigvecs = np.linalg.eigh(cov)
        top = np.argsort(eigvals)[::-1][:n_components]
        axes = eigvecs[:, top]
        signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(n_components)])
        axes = axes * signs
        if not whiten:
            return cls(mean=mean.astype(np.float32), matrix=axes.astype(np.float32))
        std = np.sqrt(np.maximum(eigvals[top], 1e-12))
        return cls(mean=mean.astype(np.float32), matrix=(axes * (scale / std)).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``x`` [n, d] to [n, K] float32."""
        return (x - self.mean) @ self.matrix

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters."""
        return self.mean.nbytes + self.matrix.nbytes
