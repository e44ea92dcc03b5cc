"""PCA-sign: FlowHash without its flow, the ablation that isolates what the flow adds.

The same projection 128 -> K as FlowHash (``projection``: PCA whitening fitted on the train
anchors, or the learned head of ``methods.common.learned_projection``, the same fitted head as
FlowHash's), bits = signs of the projection, the same shared ``HashTable``, and the same
probing as FlowHash: margin-ordered
(``n_probes``, least certain bits first) or the paper's threshold probing (``tau``) and DB
multi-insertion (``tau_db``). It is FlowHash with ``n_blocks = 0``: nothing is trained beyond
the projection, so any gain FlowHash shows over it is the flow's. ``candidates``: distinct DB ids in
the probed buckets, all re-ranked on the full embeddings.
"""
from __future__ import annotations

from typing import Any

from methods.flowhash import FlowHash
from methods.registry import register


@register
class PCASign(FlowHash):
    """Sign bits of the projected embedding (PCA whitening or the learned head), FlowHash's probing; query
    knobs ``n_probes`` or ``tau``."""

    name = "pca-sign"
    build_defaults = {"K": 16, "projection": "pca", "tau_db": 0.0, "kernels": "numba"}
    devices = ("cpu",)

    def _check_build_params(self, params: dict[str, Any]) -> None:
        for key, value in {**FlowHash.build_defaults, "n_blocks": 0}.items():  # FlowHash's, with no flow
            params.setdefault(key, value)
        super()._check_build_params(params)
