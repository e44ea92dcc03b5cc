"""What running method configurations in other processes (Ray workers) needs: the inputs made
whole before they are shipped, each worker's private copy of them, and the node policy (the
latencies of one run are measured on one kind of node)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from methods.registry import learns, method_class

from .environment import node_kind
from .inputs import RunInputs
from .store import RunStore, RunStoreError


def private_inputs(inputs: RunInputs) -> RunInputs:
    """``inputs`` with its DB and query matrices in this process's own memory: arrays mapped from
    Ray's shared-memory object store are read-only and, searched in place, slower to scan than
    the local engine's (about 15% for exhaustive search here), which would make the engines'
    latencies differ. A scaling run's memory-mapped store is left as it is on both engines."""
    if inputs.db.flags.writeable or isinstance(inputs.db, np.memmap):
        return inputs
    own = replace(inputs, db=np.array(inputs.db), query_emb=np.array(inputs.query_emb))
    own.__dict__.update({k: v for k, v in inputs.__dict__.items()
                         if k in ("train", "spectrogram", "audio", "encoder_ms", "spectral_ms")})
    return own


def prepare_for_remote(inputs: RunInputs, names: list[str]) -> None:
    """Compute here what ``names`` would compute lazily (the train pairs, spectral images, raw
    audio, the front end's time per segment), so that the copy of ``inputs`` handed to other
    processes holds it and they all search the same rows and add the same front-end time."""
    if any(learns(n) for n in names):
        inputs.train  # noqa: B018 - cached on the object
    for kind in {method_class(n).input_kind for n in names}:
        inputs.matrices(kind)
        inputs.frontend_ms_per_segment(kind)


def node_kinds_of(store: RunStore, labels: list[str]) -> dict[str, list[str]]:
    """{node kind: labels of the parts measured on it} (parts that recorded no node are left out)."""
    kinds: dict[str, list[str]] = {}
    for label in labels:
        meta, _ = store.part_meta(label)
        if meta and meta.get("node"):
            kinds.setdefault(node_kind(meta["node"]), []).append(label)
    return kinds


def check_one_node_kind(kinds: dict[str, list[str]], allow_mixed: bool) -> None:
    """Refuse a run whose latencies were measured on nodes of different kinds, unless ``allow_mixed``."""
    if len(kinds) > 1 and not allow_mixed:
        listed = "; ".join(f"{kind}: {', '.join(labels[:4])}{' ...' if len(labels) > 4 else ''}"
                           for kind, labels in kinds.items())
        raise RunStoreError(f"this run's parts were measured on nodes of {len(kinds)} kinds ({listed}); latencies "
                            f"are only comparable on one kind of node. Run the others again there (--redo METHOD), "
                            f"or pass --mix-nodes to accept the mixture (the report then says so)")
