"""faiss IndexBinaryHash / IndexBinaryMultiHash over LSH's sign bits: a C++ reference for the shared table.

The codes are exactly ``lsh``'s: the same L*K random hyperplanes drawn from the same seed
(``LSH.draw_planes`` / ``LSH.sign_bits``, inherited), packed LSB-first into an (L*K)-bit binary
code (zero bits pad it to a whole number of bytes; they never reach a hash key). With ``L = 1``
the index is ``faiss.IndexBinaryHash(code bits, K)``: one table keyed by the K bits. With
``L > 1`` it is ``faiss.IndexBinaryMultiHash(code bits, L, K)``: table t keyed by bits
t*K .. t*K+K-1, as LSH's table t. Query knob ``nflip``: faiss probes every bucket within that
Hamming distance of the query's key in each table, the same probe set as ``lsh`` with
``radius = nflip``, so both methods see the same candidates and differ only in the code that
does the work (faiss's C++ hash tables against the shared NumPy ``HashTable``).

Search calls faiss's ``range_search`` with a radius above the code length, which returns every
DB item in the probed buckets (faiss computes each one's Hamming distance on the way, and keeps
them all): ``candidates`` is that count, exactly what faiss scanned, distinct ids across tables.
Those candidates are re-ranked by inner product on the full embeddings (``hash_table``'s
``inner_products`` / ``top_k``, as LSH does), so hit rates compare with LSH's one for one.
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from methods.base import SearchResult, check_int_range
from methods.common import hash_kernels
from methods.common.hash_table import inner_products, pack_bits, top_k
from methods.lsh import LSH
from methods.registry import register


@register
class BinaryHash(LSH):
    """faiss IndexBinaryHash (L=1) / IndexBinaryMultiHash (L tables) on LSH's K-bit sign codes; knob ``nflip``."""

    name = "binary-hash"
    build_defaults = {"K": 16, "L": 1, "kernels": "numba"}  # kernels: of the re-rank, as LSH's
    query_defaults = {"nflip": 0}
    threads_over_batch = True  # faiss spreads a batch over its OpenMP threads

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("nflip", params["nflip"], 0, self.params["K"])

    def _apply_threads(self) -> None:
        faiss.omp_set_num_threads(self.threads)

    @property
    def code_bits(self) -> int:
        """Binary code length: L*K rounded up to whole bytes."""
        return 8 * -(-self.params["L"] * self.params["K"] // 8)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """faiss binary codes of ``x`` [n, d]: uint8 [n, code_bits / 8], bit j of the code = LSH bit j."""
        bits = self.sign_bits(x)
        bits = np.pad(bits, ((0, 0), (0, self.code_bits - bits.shape[1])))
        return np.packbits(bits, axis=1, bitorder="little")

    def _build(self, db: np.ndarray) -> None:
        K, L = self.params["K"], self.params["L"]
        self.draw_planes(db.shape[1])
        if L == 1:
            self.index = faiss.IndexBinaryHash(self.code_bits, K)
        else:
            self.index = faiss.IndexBinaryMultiHash(self.code_bits, L, K)
        self.index.add(self.codes(db))
        self.db = np.ascontiguousarray(db, dtype=np.float32)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        self.index.nflip = self.query_params["nflip"]
        codes = self.codes(q)
        self.clock.lap("hash")
        lims, _, labels = self.index.range_search(codes, self.code_bits + 1)
        self.clock.lap("library")
        if self.params["kernels"] == "numba":  # ties by id, as the sorted NumPy path below
            qptr, ids = lims.astype(np.int64), labels.astype(np.int64)
            scores = hash_kernels.rerank(self.db, q, qptr, ids)
            self.clock.lap("rerank")
            out_ids, out_scores, counts = hash_kernels.top_k(qptr, ids, scores, k, True)
            self.clock.lap("topk")
            return SearchResult(ids=out_ids, scores=out_scores, candidates=counts)
        counts = np.diff(lims).astype(np.int64)
        qidx = np.repeat(np.arange(q.shape[0], dtype=np.int64), counts)
        ids = labels.astype(np.int64)
        # faiss returns each query's candidates in its own bucket order; sort them by id (equal scores
        # then go to the lower id: deterministic, and the order LSH's multi-table gather uses)
        order = np.lexsort((ids, qidx))
        qidx, ids = qidx[order], ids[order]
        scores = inner_products(self.db, q, qidx, ids)
        self.clock.lap("rerank")
        result = top_k(q.shape[0], qidx, ids, scores, k)
        self.clock.lap("topk")
        return result

    def _stats(self) -> dict[str, Any]:
        K, L = self.params["K"], self.params["L"]
        counts = self._bucket_counts()
        return {
            "index_bytes": int(faiss.serialize_index_binary(self.index).nbytes) + self.planes.nbytes + self.db.nbytes,
            "K": K,
            "L": L,
            "code_bits": self.code_bits,
            "n_buckets_total": 2 ** K,
            "bucket_counts": counts,
        }

    def _bucket_counts(self) -> np.ndarray:
        """Occupancy of the non-empty buckets of table 0 (from the codes, as faiss keys them)."""
        return np.unique(pack_bits(self.sign_bits(self.db)[:, :self.params["K"]]), return_counts=True)[1]
