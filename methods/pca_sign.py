"""PCA-sign: FlowHash without its flow, the ablation that isolates what the flow adds.

The same PCA whitening 128 -> K fitted on the train anchors, bits = signs of the whitened
projection, the same shared ``HashTable``, and the same probing as FlowHash: margin-ordered
(``n_probes``, least certain bits first) or the paper's threshold probing (``tau``) and DB
multi-insertion (``tau_db``). It is FlowHash with ``n_blocks = 0``: nothing is trained beyond
the PCA, so any gain FlowHash shows over it is the flow's. ``candidates``: distinct DB ids in
the probed buckets, all re-ranked on the full embeddings.
"""
from __future__ import annotations

from typing import Any

from methods.flowhash import FlowHash
from methods.registry import register


@register
class PCASign(FlowHash):
    """Sign bits of the PCA-whitened embedding, FlowHash's probing; query knobs ``n_probes`` or ``tau``."""

    name = "pca-sign"
    build_defaults = {"K": 16, "tau_db": 0.0, "kernels": "numba"}
    devices = ("cpu",)

    def _check_build_params(self, params: dict[str, Any]) -> None:
        for key, value in {**FlowHash.build_defaults, "n_blocks": 0}.items():  # FlowHash's, with no flow
            params.setdefault(key, value)
        super()._check_build_params(params)
