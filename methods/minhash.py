"""Waveprint (Baluja & Covell 2008): wavelet sign fingerprints, MinHash and banded LSH (datasketch).

A classical baseline that does not use the neural encoder: its input is the harness's spectral
image of each 1 s segment (``input_kind = "spectrogram"``; ``encoders/spectral.py``: 32 log-mel
bands of 318-2000 Hz x 32 frames, flattened band-major). Per segment:

1. a standard 2-D Haar wavelet decomposition of the ``image_bands`` x (d / ``image_bands``)
   image (orthonormal; full 1-D decomposition of every row, then of every column; both sides
   must be powers of two);
2. the ``top_t`` coefficients of largest magnitude keep their sign, the rest become 0; the
   fingerprint is the set {2i + [c_i < 0] : i among the top t} (Waveprint's 2 bits per
   coefficient: 10 positive, 01 negative, 00 dropped), ``top_t`` elements out of 2d;
3. a ``num_perm``-value MinHash signature of that set (datasketch ``MinHash``, seeded by
   ``seed``; computed in one vectorised min over a table holding each possible element's
   datasketch permuted hash values, which is what ``MinHash.update`` computes element by
   element; ``tests/test_methods/test_baselines.py`` checks the two agree);
4. a datasketch ``MinHashLSH`` of ``bands`` bands of ``rows`` signature values (b x r <=
   num_perm; Waveprint: 25 x 4 of 100) over the DB signatures, keys = DB row ids.

Search probes the first ``probe_bands`` bands (datasketch ``MinHashLSH._query_b``, the query
its own LSH Ensemble uses; ``probe_bands = bands`` is ``MinHashLSH.query``) and re-ranks the
union of the matching DB rows by the exact Jaccard similarity of the two fingerprints (the
quantity the signatures estimate; kept as 2d-bit sets, one AND and popcount per candidate).
On the default synth run the true segment's Jaccard is close to the best wrong one's, so the
exact value ranks clearly better than a 100-value MinHash estimate would. ``scores`` are
Jaccard similarities in [0, 1], not inner products (``approximate_scores``); ties go to the
lower id. ``candidates``: the distinct DB rows returned by the LSH, all of which are re-ranked.

Steps 1-3 and the re-ranking run vectorised over all query rows of a call; the band look-ups
are datasketch's own Python, one ``_query_b`` call per query row, and are timed with the rest.
No bucket balance is reported: the band keys are not K-bit codes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from methods.base import Method, SearchResult, check_int_range
from methods.common.hash_table import top_k
from methods.registry import register

SIGNATURE_BATCH_BYTES = 32 << 20  # bound on the [rows, top_t, num_perm] temporary of one signature batch
RERANK_BATCH = 1 << 15            # candidates scored per step (bounds the [batch, words] temporary)
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Number of set bits in each row of a uint64 [n, w] array (int64 [n])."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x).sum(axis=1, dtype=np.int64)
    return _BYTE_POPCOUNT[x.view(np.uint8)].sum(axis=1, dtype=np.int64)


def haar_1d(x: np.ndarray) -> np.ndarray:
    """Full orthonormal 1-D Haar decomposition along the last axis (its length a power of two).

    Layout: [overall average, coarsest detail, 2 next details, 4 next, ...]."""
    out = np.array(x, dtype=np.float32)
    length = out.shape[-1]
    while length > 1:
        even, odd = out[..., 0:length:2], out[..., 1:length:2]
        avg, diff = (even + odd) / math.sqrt(2), (even - odd) / math.sqrt(2)
        out[..., :length // 2] = avg
        out[..., length // 2:length] = diff
        length //= 2
    return out


def haar_2d(images: np.ndarray) -> np.ndarray:
    """Standard 2-D Haar decomposition of [n, rows, cols] images: every row, then every column."""
    rows_done = haar_1d(images)
    return np.swapaxes(haar_1d(np.swapaxes(rows_done, -1, -2)), -1, -2)


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@register
class MinHashWaveprint(Method):
    """Waveprint: Haar-wavelet sign fingerprints of spectral images, MinHash + banded LSH (datasketch)."""

    name = "minhash"
    input_kind = "spectrogram"
    approximate_scores = True
    build_defaults = {"image_bands": 32, "top_t": 100, "num_perm": 120, "bands": 40, "rows": 3}
    query_defaults = {"probe_bands": 40}

    def _check_build_params(self, params: dict[str, Any]) -> None:
        image_bands = check_int_range("image_bands", params["image_bands"], 1)
        if not _power_of_two(image_bands):
            raise ValueError(f"image_bands={image_bands} is not allowed; it must be a power of two")
        check_int_range("top_t", params["top_t"], 1)
        num_perm = check_int_range("num_perm", params["num_perm"], 2)
        rows = check_int_range("rows", params["rows"], 1, num_perm)
        check_int_range("bands", params["bands"], 2, num_perm // rows)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("probe_bands", params["probe_bands"], 1, self.params["bands"])

    # ---- fingerprints --------------------------------------------------------------------

    def _check_shape(self, d: int) -> None:
        bands, top_t = self.params["image_bands"], self.params["top_t"]
        frames = d // bands
        if d % bands or not _power_of_two(frames):
            raise ValueError(f"d={d} is not image_bands={bands} x a power of two frames; the spectral image "
                             f"must be image_bands x 2^m (allowed: d = {bands} x 2^m)")
        if top_t > d:
            raise ValueError(f"top_t={top_t} is out of range for d={d}; allowed: 1 <= top_t <= {d}")

    def fingerprint(self, x: np.ndarray) -> np.ndarray:
        """Waveprint sets of spectral images ``x`` [n, d]: int64 [n, top_t] elements in [0, 2d)."""
        bands, top_t = self.params["image_bands"], self.params["top_t"]
        coeffs = haar_2d(x.reshape(x.shape[0], bands, -1)).reshape(x.shape[0], -1)
        magnitude = np.abs(coeffs)
        if top_t < coeffs.shape[1]:
            top = np.argpartition(-magnitude, top_t - 1, axis=1, kind="introselect")[:, :top_t]
        else:
            top = np.broadcast_to(np.arange(coeffs.shape[1]), coeffs.shape)
        top = np.sort(top, axis=1)
        negative = np.take_along_axis(coeffs, top, axis=1) < 0
        return 2 * top.astype(np.int64) + negative

    def bitsets(self, elements: np.ndarray) -> np.ndarray:
        """Fingerprint sets [n, top_t] as packed 2d-bit sets: uint64 [n, ceil(2d / 64)]."""
        bits = np.zeros((elements.shape[0], 2 * self.image_size), dtype=bool)
        np.put_along_axis(bits, elements, True, axis=1)
        packed = np.packbits(bits, axis=1, bitorder="little")
        pad = (-packed.shape[1]) % 8
        return np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad)))).view(np.uint64)

    def signatures(self, elements: np.ndarray) -> np.ndarray:
        """MinHash signatures [n, num_perm] (datasketch's dtype) of fingerprint sets [n, top_t]."""
        out = np.empty((elements.shape[0], self.params["num_perm"]), dtype=self.element_hashes.dtype)
        step = max(1, SIGNATURE_BATCH_BYTES // (elements.shape[1] * self.element_hashes[0].nbytes))
        for start in range(0, elements.shape[0], step):
            out[start:start + step] = self.element_hashes[elements[start:start + step]].min(axis=1)
        return out

    def _minhash(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=self.scheme)

    # ---- index ---------------------------------------------------------------------------

    def _build(self, db: np.ndarray) -> None:
        self._check_shape(db.shape[1])
        self.image_size = db.shape[1]
        p = self.params
        # every fingerprint element's permuted hash values, from datasketch itself: the signature
        # of a set is their element-wise minimum over its elements (MinHash.update, vectorised)
        empty = MinHash(num_perm=p["num_perm"], seed=self.seed)
        self.scheme = empty.scheme
        table = []
        for element in range(2 * db.shape[1]):
            m = MinHash(num_perm=p["num_perm"], seed=self.seed, permutations=empty.permutations, scheme=self.scheme)
            m.update(element.to_bytes(4, "little"))
            table.append(m.hashvalues)
        self.element_hashes = np.stack(table)
        elements = self.fingerprint(db)
        self.db_sets = self.bitsets(elements)
        signatures = self.signatures(elements)
        self.lsh = MinHashLSH(num_perm=p["num_perm"], params=(p["bands"], p["rows"]))
        with self.lsh.insertion_session() as session:
            for i, signature in enumerate(signatures):
                session.insert(i, self._minhash(signature), check_duplication=False)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        elements = self.fingerprint(q)
        q_sets = self.bitsets(elements)
        n_bands = self.query_params["probe_bands"]
        per_query = [np.fromiter(self.lsh._query_b(self._minhash(s), n_bands), dtype=np.int64)
                     for s in self.signatures(elements)]
        self.clock.lap("hash")
        counts = np.array([c.size for c in per_query], dtype=np.int64)
        ids = np.concatenate([np.sort(c) for c in per_query])
        qidx = np.repeat(np.arange(q.shape[0], dtype=np.int64), counts)
        scores = np.empty(ids.size, dtype=np.float32)
        union_base = 2 * self.params["top_t"]  # |A| + |B|: every fingerprint has top_t elements
        for lo in range(0, ids.size, RERANK_BATCH):
            hi = lo + RERANK_BATCH
            inter = popcount_rows(self.db_sets[ids[lo:hi]] & q_sets[qidx[lo:hi]])
            scores[lo:hi] = inter / (union_base - inter)
        self.clock.lap("rerank")
        result = top_k(q.shape[0], qidx, ids, scores, k)
        self.clock.lap("topk")
        return result

    def _stats(self) -> dict[str, Any]:
        p = self.params
        band_keys = p["bands"] * p["rows"] * self.element_hashes.itemsize * self.n
        return {
            # fingerprint bitsets, the element table, and the LSH's band keys and id lists (estimated:
            # datasketch keeps them in Python dicts, whose own overhead is not counted)
            "index_bytes": int(self.db_sets.nbytes + self.element_hashes.nbytes + band_keys
                               + 8 * p["bands"] * self.n),
            "num_perm": p["num_perm"],
            "bands": p["bands"],
            "rows": p["rows"],
            "top_t": p["top_t"],
        }
