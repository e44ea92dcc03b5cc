"""Query-directed multi-probe LSH (Lv et al., VLDB 2007), on centred random hyperplanes.

The fair LSH baseline for a multi-probe hash: the same care FlowHash gets. Hyperplanes are drawn
as in ``lsh`` (Gaussian, seeded; normalised to unit length so margins compare across bits) but
pass through the mean of the train anchors (``center``), so each bit splits the data near its
median instead of at the origin. Each table probes its own bucket first, then perturbations
ordered by the summed |margin| of the flipped bits, the query's distance to each flipped
hyperplane (``hash_table.probe_codes`` with flip costs, the machinery FlowHash's margin-ordered
probing uses). ``n_probes`` buckets per table; ``candidates``: distinct DB ids in the probed
buckets of all L tables, all re-ranked on the full embeddings by the shared ``HashTable``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import SearchResult, TrainData, check_int_range
from methods.common.hash_table import latent_probes
from methods.lsh import LSH
from methods.registry import register

MAX_PROBES = 4096


@register
class DirectedLSH(LSH):
    """Centred random-hyperplane LSH with query-directed multi-probe; query knob ``n_probes``."""

    name = "lsh-directed"
    build_defaults = {"K": 16, "L": 1, "center": True, "kernels": "numba"}
    query_defaults = {"n_probes": 1}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        super()._check_build_params(params)  # K and L as LSH's
        if not isinstance(params["center"], bool):
            raise ValueError(f"center={params['center']!r} is not allowed; choose true or false")

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("n_probes", params["n_probes"], 1, min(2 ** self.params["K"], MAX_PROBES))

    def _fit(self, train: TrainData) -> None:
        self.center = train.anchors.mean(axis=0).astype(np.float32) if self.params["center"] else None

    def draw_planes(self, d: int) -> None:
        """LSH's hyperplanes for dimension ``d``, each scaled to unit length."""
        super().draw_planes(d)
        self.planes /= np.linalg.norm(self.planes, axis=0, keepdims=True)

    def margins(self, x: np.ndarray) -> np.ndarray:
        """Signed distances of ``x`` [n, d] to the L*K hyperplanes: float32 [n, L*K]."""
        center = getattr(self, "center", None)
        return (x - center if center is not None else x) @ self.planes

    def sign_bits(self, x: np.ndarray) -> np.ndarray:
        """The L*K bits: which side of each (centred) hyperplane ``x`` lies on."""
        return self.margins(x) > 0

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        K, L = self.params["K"], self.params["L"]
        margins = self.margins(q)
        self.clock.lap("hash")
        probes = [latent_probes(margins[:, t * K:(t + 1) * K], self.query_params["n_probes"], self.params["kernels"])
                  for t in range(L)]
        self.clock.lap("probes")
        return self.table.search(q, probes, k, self.clock)

    def _stats(self) -> dict[str, Any]:
        stats = super()._stats()
        center = getattr(self, "center", None)
        stats["index_bytes"] += center.nbytes if center is not None else 0
        return stats


