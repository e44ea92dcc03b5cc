"""A standard binary index over a learned hash method's codes, then the float re-rank.

``binary-index`` fits the hash method named by ``codes`` (``flowhash``, ``pca-sign`` or ``itq``, at
its defaults, with this method's ``K`` and, for the first two, ``projection``) and takes its bits
(``latent(x) > 0``). The DB items are grouped by code into the same bucket table the hash methods
use (``methods.common.hash_table.HashTable``), and the distinct codes, as faiss binary vectors,
go into a faiss binary index: ``IndexBinaryHNSW`` (``index: hnsw``; ``M``, ``efConstruction``;
query knob ``efSearch``, at least ``n_probes``, as faiss's float HNSW takes at least ``k``) or
``IndexBinaryIVF`` (``index: ivf``; ``nlist`` lists from binary k-means on the train anchors'
distinct codes; query knob ``nprobe``). A search finds each query's ``n_probes`` nearest codes by
Hamming distance in that index and re-ranks their buckets' items on the full embeddings with the
hash methods' own kernels. So it differs from FlowHash only in how the probed buckets are chosen:
flips of the least certain bits, or a graph / inverted file over the occupied codes. The graph
holds each code once: over the DB items themselves, a code shared by many items puts many
vectors at distance 0, which HNSW's neighbour pruning leaves unreachable. K bits are padded
with zeros to whole bytes (faiss binary indexes take multiples of 8); the padding adds no
distance. ``candidates`` counts the items re-ranked, as for the hash methods.
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from methods.base import Method, SearchResult, TrainData, check_choice, check_int_range
from methods.common.hash_table import MAX_BITS, HashTable, check_kernels, pack_bits, warm_up
from methods.registry import get_method, register

CODE_METHODS = ("flowhash", "pca-sign", "itq")
INDEXES = ("hnsw", "ivf")


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Boolean [n, K] bits as faiss binary codes [n, ceil(K / 8)] uint8 (bit j of byte j // 8 is
    column j, little-endian within a byte; the padding bits are 0)."""
    return np.ascontiguousarray(np.packbits(np.asarray(bits, dtype=bool), axis=1, bitorder="little"))


@register
class BinaryIndex(Method):
    """A faiss binary graph or inverted file over a hash method's occupied codes, with the float re-rank."""

    name = "binary-index"
    build_defaults: dict[str, Any] = {"codes": "flowhash", "K": 16, "projection": "pca", "index": "hnsw",
                                      "M": 16, "efConstruction": 40, "nlist": 256, "kernels": "numba"}
    query_defaults: dict[str, Any] = {"n_probes": 16, "efSearch": 16, "nprobe": 16}
    threads_over_batch = False  # faiss on one thread, then the compiled re-rank, which releases the GIL

    hasher: Method | None = None

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_choice("codes", params["codes"], CODE_METHODS)
        check_choice("index", params["index"], INDEXES)
        check_int_range("K", params["K"], 2, MAX_BITS)
        check_choice("projection", params["projection"], ("pca", "learned"))
        if params["codes"] == "itq" and params["projection"] != "pca":
            raise ValueError("projection='learned' is not allowed with codes='itq' (ITQ rotates PCA); "
                             "allowed: projection='pca'")
        check_int_range("M", params["M"], 2)
        check_int_range("efConstruction", params["efConstruction"], 1)
        check_int_range("nlist", params["nlist"], 1)
        check_kernels(params["kernels"])

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("n_probes", params["n_probes"], 1)
        check_int_range("efSearch", params["efSearch"], 1)
        # nprobe is the inverted file's knob: an HNSW configuration ignores it, whatever its value
        check_int_range("nprobe", params["nprobe"], 1, self.params["nlist"] if self.params["index"] == "ivf" else None)

    def _fit(self, train: TrainData) -> None:
        p = self.params
        extra = {} if p["codes"] == "itq" else {"projection": p["projection"]}
        self.hasher = get_method(p["codes"], seed=self.seed, threads=self.threads, device=self.device, K=p["K"],
                                 kernels=p["kernels"], **extra)
        self.hasher.fit(train)
        self._train_codes = np.unique(self._bits(train.anchors), axis=0)

    def _warm_up(self) -> None:
        warm_up(self.params["kernels"])
        if self.hasher is not None:
            self.hasher.warm_up()

    def _bits(self, x: np.ndarray) -> np.ndarray:
        """Each row's code as faiss binary bytes [n, ceil(K / 8)]."""
        if self.hasher is None:
            raise RuntimeError("binary-index: call fit(train) before build() or search()")
        return pack_codes(self.hasher.latent(x) > 0)

    def _build(self, db: np.ndarray) -> None:
        p = self.params
        z = self.hasher.latent(db)
        self.table = HashTable(pack_bits(z > 0), db, p["kernels"])
        self.ucodes = self.table.ucodes[0]  # the occupied codes, ascending: the faiss index's ids
        weights = np.left_shift(np.int64(1), np.arange(p["K"], dtype=np.int64))
        distinct = pack_codes((self.ucodes[:, None] & weights) != 0)
        bits = 8 * distinct.shape[1]
        if p["index"] == "hnsw":
            self.index = faiss.IndexBinaryHNSW(bits, p["M"])
            self.index.hnsw.efConstruction = p["efConstruction"]
        else:
            if p["nlist"] > len(self._train_codes):
                raise ValueError(f"nlist={p['nlist']} is out of range for {len(self._train_codes)} distinct "
                                 f"training codes; allowed: 1 <= nlist <= {len(self._train_codes)}")
            self.index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, p["nlist"])
            self.index.cp.seed = self.seed
            self.index.cp.min_points_per_centroid = 1
            self.index.train(self._train_codes)
        self.index.add(distinct)

    def _apply_threads(self) -> None:
        faiss.omp_set_num_threads(self.threads)
        if self.hasher is not None:
            self.hasher.threads = self.threads
            self.hasher._apply_threads()

    def probes(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, code) pairs: each query's ``n_probes`` nearest occupied codes by Hamming
        distance in the binary index, nearest first, grouped by query ascending."""
        qbits = self._bits(q)
        self.clock.lap("hash")
        n_probes = min(self.query_params["n_probes"], len(self.ucodes))
        if self.params["index"] == "hnsw":
            self.index.hnsw.efSearch = max(self.query_params["efSearch"], n_probes)
        else:
            self.index.nprobe = self.query_params["nprobe"]
        _, labels = self.index.search(qbits, n_probes)
        self.clock.lap("library")
        rows, cols = np.nonzero(labels >= 0)
        return rows.astype(np.int64), self.ucodes[labels[rows, cols]]

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        rows, codes = self.probes(q)
        return self.table.search_pairs(q, [(rows, codes)], k, self.clock)

    def _stats(self) -> dict[str, Any]:
        transform = getattr(self.hasher, "transform", None)
        model = int(getattr(self.hasher.projection, "nbytes", 0)) + (
            0 if transform is None else sum(t.numel() * t.element_size() for t in transform.state_dict().values()))
        K = self.params["K"]
        return {"index_bytes": int(faiss.serialize_index_binary(self.index).nbytes) + self.table.nbytes() + model,
                "K": K, "L": 1, "n_buckets_total": 2 ** K, "codes": self.params["codes"],
                "index": self.params["index"], "occupied_codes": int(len(self.ucodes)),
                "bucket_counts": np.diff(self.table.offsets[0])}
