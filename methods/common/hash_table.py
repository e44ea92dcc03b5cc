"""The hash table LSH, FlowHash and ITQ share: CSR buckets, multi-probe sequences, re-ranking.

(``binary-hash`` and ``minhash`` reuse its ranking helpers ``inner_products`` and ``top_k``.)

Codes are K-bit integers (K <= 30) stored as int64, one code array per table. Each table
is kept in CSR form: the DB row ids sorted by code (``order``), the distinct codes in
ascending order (``ucodes``) and ``offsets`` so that bucket ``ucodes[b]`` holds
``order[offsets[b]:offsets[b+1]]``. A query's probe codes are looked up with one
``np.searchsorted`` over all queries and probes, the bucket contents are gathered without
Python loops, deduplicated across tables, scored by inner product with the full DB
embeddings and cut to the top k.

Probe sequences are sets of bits to flip. ``probe_codes`` enumerates them over *ranks*
(rank 0 = the first bit in a query's ``flip_order``): by Hamming radius (LSH: all codes
within radius r, in non-decreasing distance) or by the sum of per-bit flip costs
(FlowHash: the standard multi-probe order, cost = |z| of the flipped latent dimensions).

Everything here is NumPy, the reference. ``kernels="numba"`` (the default of the methods that use
the table) runs the compiled versions of ``hash_kernels.py`` instead, which give the same probes,
candidates and ids. Searches mark their stages on an optional ``StageClock``: ``gather``,
``rerank``, ``topk``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations
from typing import Sequence

import numpy as np

from methods.base import SearchResult
from methods.common import hash_kernels
from methods.stages import StageClock

MAX_BITS = 30  # codes must fit comfortably in int64 arithmetic and 2^K bucket counts
KERNELS = ("numba", "numpy")  # compiled hot paths, or the NumPy reference
DENSE_MAX_BITS = 20  # compiled gather: codes below 2^20 are looked up in a dense table (4 MB a table at most)
_OFF = StageClock()  # a clock that is never on, for calls given none


def check_kernels(value: object) -> str:
    """``value`` if it names a kernel set (``KERNELS``), else a ValueError listing them."""
    if value not in KERNELS:
        raise ValueError(f"kernels={value!r} is not allowed; choose one of: {', '.join(KERNELS)}")
    return value  # type: ignore[return-value]


def warm_up(kernels: str) -> None:
    """Compile the hash-table kernels of ``kernels`` ("numba"; nothing to do for "numpy")."""
    if check_kernels(kernels) == "numba":
        hash_kernels.warm_up()


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean [n, K] bit matrix into int64 codes; bit j of a code is column j."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2 or not 1 <= bits.shape[1] <= MAX_BITS:
        raise ValueError(f"bits must be [n, K] with 1 <= K <= {MAX_BITS}, got shape {bits.shape}")
    weights = np.left_shift(np.int64(1), np.arange(bits.shape[1], dtype=np.int64))
    return bits.astype(np.int64) @ weights


def hamming_ball_size(n_bits: int, radius: int) -> int:
    """Number of K-bit codes within Hamming distance ``radius`` of a code: sum_i C(K, i)."""
    return sum(math.comb(n_bits, i) for i in range(min(radius, n_bits) + 1))


@lru_cache(maxsize=64)
def subset_template(n_ranks: int, n_subsets: int) -> np.ndarray:
    """The first ``n_subsets`` subsets of ``range(n_ranks)``, by size then lexicographically.

    Returns a read-only int64 0/1 [n_subsets, n_ranks] matrix; row 0 is the empty set.
    """
    if n_subsets > 2 ** n_ranks:
        raise ValueError(f"n_subsets={n_subsets} is out of range; allowed: 1 <= n_subsets <= 2**{n_ranks}")
    out = np.zeros((n_subsets, n_ranks), dtype=np.int64)
    row = 0
    for size in range(n_ranks + 1):
        for combo in combinations(range(n_ranks), size):
            if row == n_subsets:
                break
            out[row, list(combo)] = 1
            row += 1
    out.flags.writeable = False
    return out


@lru_cache(maxsize=64)
def _identity_masks(n_ranks: int, n_subsets: int) -> np.ndarray:
    """XOR masks of ``subset_template`` when rank j is bit j (read-only int64 [n_subsets])."""
    out = subset_template(n_ranks, n_subsets) @ np.left_shift(np.int64(1), np.arange(n_ranks, dtype=np.int64))
    out.flags.writeable = False
    return out


@lru_cache(maxsize=16)
def _all_subsets_float(n_ranks: int) -> np.ndarray:
    """All subsets of ``range(n_ranks)`` as a float64 [n_ranks, 2^n_ranks] matrix (template transposed)."""
    out = np.ascontiguousarray(subset_template(n_ranks, 2 ** n_ranks).T, dtype=np.float64)
    out.flags.writeable = False
    return out


def probe_codes(query_codes: np.ndarray, flip_order: np.ndarray, n_probes: int,
                flip_costs: np.ndarray | None = None, max_template_bits: int = 12) -> np.ndarray:
    """The first ``n_probes`` codes each query probes, own code first.

    ``flip_order[q, j]`` is the bit index of query q's rank-j bit. Without ``flip_costs``
    the probes are all codes by Hamming radius: radius 0, then every single flip, then
    every pair, ... (lexicographic in rank within a radius), so ``n_probes =
    hamming_ball_size(K, r)`` gives exactly the ball of radius r. With ``flip_costs``
    ([nq, K], non-negative and ascending along each row: the cost of flipping rank j)
    the probes are ordered by the summed cost of the flipped bits, ties by radius. That
    ordering enumerates subsets of the ``m`` cheapest ranks only, ``m = min(K,
    n_probes - 1)`` capped at ``max_template_bits`` (but never below log2(n_probes));
    it is exact whenever ``n_probes - 1 <= max_template_bits``, because a subset that
    holds rank j costs at least as much as the empty set and each of the j cheaper single
    flips.

    Returns an int64 [nq, n_probes] array of codes (distinct within each row).
    """
    query_codes = np.asarray(query_codes, dtype=np.int64).ravel()
    flip_order = np.asarray(flip_order, dtype=np.int64)
    if flip_order.ndim != 2 or flip_order.shape[0] != query_codes.shape[0]:
        raise ValueError(f"flip_order must be [nq={query_codes.shape[0]}, K], got shape {flip_order.shape}")
    n_bits = flip_order.shape[1]
    if not 1 <= n_bits <= MAX_BITS:
        raise ValueError(f"K={n_bits} is out of range; allowed: 1 <= K <= {MAX_BITS}")
    _check_n_probes(n_probes, n_bits)
    bitvals = np.left_shift(np.int64(1), flip_order)  # [nq, K]: the XOR mask of each rank

    if flip_costs is None:
        if not np.all(flip_order == flip_order[:1]):
            return query_codes[:, None] ^ (bitvals @ subset_template(n_bits, int(n_probes)).T)
        if np.array_equal(flip_order[0], np.arange(n_bits)):
            return query_codes[:, None] ^ _identity_masks(n_bits, int(n_probes))
        return query_codes[:, None] ^ (subset_template(n_bits, int(n_probes)) @ bitvals[0])

    flip_costs = np.asarray(flip_costs, dtype=np.float64)
    if flip_costs.shape != flip_order.shape:
        raise ValueError(f"flip_costs must have the shape of flip_order {flip_order.shape}, got {flip_costs.shape}")
    m = template_bits(n_bits, n_probes, max_template_bits)
    template = subset_template(m, 2 ** m)  # [2^m, m], all subsets, by size then lexicographic
    cost = flip_costs[:, :m] @ _all_subsets_float(m)  # [nq, 2^m]
    if n_probes < cost.shape[1]:
        pick = np.argpartition(cost, n_probes - 1, axis=1)[:, :n_probes]
    else:
        pick = np.broadcast_to(np.arange(cost.shape[1]), cost.shape)
    # order the picked subsets by cost, ties by template index (fewer flips first)
    pick = np.take_along_axis(pick, np.lexsort((pick, np.take_along_axis(cost, pick, axis=1))), axis=1)
    masks = (template[pick] * bitvals[:, None, :m]).sum(axis=2)  # [nq, P]
    return query_codes[:, None] ^ masks


def _check_n_probes(n_probes: object, n_bits: int) -> None:
    """A ValueError unless ``n_probes`` is an integer in [1, 2^K]."""
    if isinstance(n_probes, bool) or not isinstance(n_probes, (int, np.integer)) or not 1 <= n_probes <= 2 ** n_bits:
        raise ValueError(f"n_probes={n_probes!r} is out of range; allowed: 1 <= n_probes <= 2**K = {2 ** n_bits}")


def template_bits(n_bits: int, n_probes: int, max_template_bits: int = 12) -> int:
    """How many of the cheapest ranks cost-ordered probing enumerates subsets of (``probe_codes``):
    ``min(K, n_probes - 1)`` capped at ``max_template_bits``, never below log2(n_probes)."""
    min_bits = max(0, math.ceil(math.log2(n_probes)))
    return min(n_bits, max(min(n_probes - 1, max_template_bits), min_bits))


def hamming_ball_probes(codes: np.ndarray, n_bits: int, n_probes: int) -> np.ndarray:
    """``probe_codes`` with every query's identity rank order (LSH's): the first ``n_probes`` codes
    by Hamming radius around each of ``codes`` [nq], as one XOR with a cached mask row."""
    _check_n_probes(n_probes, n_bits)
    return np.asarray(codes, dtype=np.int64)[:, None] ^ _identity_masks(n_bits, int(n_probes))


def latent_probes(z: np.ndarray, n_probes: int, kernels: str = "numpy") -> np.ndarray:
    """Probe codes [n, n_probes] for real-valued latents ``z`` [n, K] whose hash bits are z > 0:
    the own bucket first, then flips of the least-certain bits (smallest |z|) by summed |z|."""
    if kernels == "numba":
        n_bits = z.shape[1]
        _check_n_probes(n_probes, n_bits)
        return hash_kernels.latent_probes(z, int(n_probes), max(1, template_bits(n_bits, n_probes)))
    uncertainty = np.abs(z)
    flip_order = np.argsort(uncertainty, axis=1, kind="stable")
    flip_costs = np.take_along_axis(uncertainty, flip_order, axis=1)
    return probe_codes(pack_bits(z > 0), flip_order, n_probes, flip_costs)


def threshold_expansion(z: np.ndarray, tau: float, max_bits: int = 12,
                        kernels: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """The paper's threshold probing (and DB multi-insertion): every bit of a row with |z| <= ``tau``
    is uncertain, and the row maps to all 2^m codes that set its m uncertain bits either way.

    ``z`` [n, K] are real-valued latents whose hash bits are z > 0. Returns ``(rows, codes)``:
    parallel int64 arrays with 2^m entries per row, grouped by row ascending, each row's own code
    first. ``m`` is capped at ``max_bits`` (the most uncertain bits, smallest |z|, are kept).
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or not 1 <= z.shape[1] <= MAX_BITS:
        raise ValueError(f"z must be [n, K] with 1 <= K <= {MAX_BITS}, got shape {z.shape}")
    if not tau >= 0:
        raise ValueError(f"tau={tau!r} is out of range; allowed: tau >= 0")
    if kernels == "numba":
        return hash_kernels.threshold_expansion(z, tau, max_bits, *_template_table(max_bits))
    codes = pack_bits(z > 0)
    magnitude = np.abs(z)
    uncertain = magnitude <= tau
    m = np.minimum(uncertain.sum(axis=1), max_bits)
    order = np.argsort(np.where(uncertain, magnitude, np.inf), axis=1, kind="stable")  # uncertain first
    bitvals = np.left_shift(np.int64(1), order)
    rows_out, codes_out = [], []
    for mm in np.unique(m):
        rows = np.flatnonzero(m == mm)
        masks = bitvals[rows, :mm] @ subset_template(int(mm), 2 ** int(mm)).T  # [len(rows), 2^mm]
        rows_out.append(np.repeat(rows, 2 ** int(mm)))
        codes_out.append((codes[rows, None] ^ masks).ravel())
    rows_all, codes_all = np.concatenate(rows_out), np.concatenate(codes_out)
    grouped = np.argsort(rows_all, kind="stable")
    return rows_all[grouped], codes_all[grouped]


@lru_cache(maxsize=4)
def _template_table(max_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``_identity_masks(m, 2^m)`` for m = 0..max_bits, concatenated, and where each m starts."""
    parts = [np.asarray(_identity_masks(m, 2 ** m)) if m else np.zeros(1, np.int64) for m in range(max_bits + 1)]
    ptr = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    return np.concatenate(parts), ptr


def _query_score_key(qidx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """uint64 keys that sort by query ascending, then score descending (exact for float32)."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    sign = np.uint32(0x80000000)
    ascending = np.where(bits & sign, ~bits, bits | sign)  # IEEE-754 order as unsigned integers
    return (qidx.astype(np.uint64) << np.uint64(32)) | (~ascending).astype(np.uint64)


class HashTable:
    """L hash tables over one DB, in CSR form, with vectorised probing and re-ranking.

    An item may sit in several buckets of a table (``from_entries``: the paper's DB-side
    multi-insertion); the gather then removes the repeats, so ``candidates`` stays the number of
    distinct items scored.
    """

    def __init__(self, codes: np.ndarray, db: np.ndarray, kernels: str = "numpy") -> None:
        """Build from ``codes`` ([N] for one table or [L, N]) and the DB embeddings ``db`` [N, d];
        ``kernels``: "numpy" (the reference) or "numba" (compiled) for the searches."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim == 1:
            codes = codes[None, :]
        if codes.ndim != 2 or codes.shape[0] < 1:
            raise ValueError(f"codes must be [N] or [L, N], got shape {codes.shape}")
        if db.ndim != 2 or db.shape[0] != codes.shape[1]:
            raise ValueError(f"db must be [N={codes.shape[1]}, d], got shape {db.shape}")
        ids = np.arange(codes.shape[1], dtype=np.int64)
        self._build([(table_codes, ids) for table_codes in codes], db, kernels)

    @classmethod
    def from_entries(cls, entries: Sequence[tuple[np.ndarray, np.ndarray]], db: np.ndarray,
                     kernels: str = "numpy") -> "HashTable":
        """Build from per-table ``(codes, ids)`` entries (parallel int64 arrays; an id may appear
        under several codes) and the DB embeddings ``db`` [N, d]."""
        table = cls.__new__(cls)
        table._build([(np.asarray(c, dtype=np.int64), np.asarray(i, dtype=np.int64)) for c, i in entries], db,
                     kernels)
        return table

    def _build(self, entries: Sequence[tuple[np.ndarray, np.ndarray]], db: np.ndarray, kernels: str) -> None:
        check_kernels(kernels)
        if not entries:
            raise ValueError("a hash table needs at least one table")
        self.kernels = kernels
        self.db = np.ascontiguousarray(db, dtype=np.float32)
        self.order: list[np.ndarray] = []    # DB ids sorted by code, per table
        self.ucodes: list[np.ndarray] = []   # distinct codes, ascending, per table
        self.offsets: list[np.ndarray] = []  # CSR offsets into order, len(ucodes) + 1, per table
        self.repeats = False                 # whether some id sits in several buckets of a table
        for table_codes, ids in entries:
            if table_codes.shape != ids.shape or table_codes.ndim != 1:
                raise ValueError(f"codes and ids must be parallel 1-d arrays, got {table_codes.shape}, {ids.shape}")
            if ids.size and (ids.min() < 0 or ids.max() >= self.db.shape[0]):
                raise ValueError(f"ids must lie in [0, N={self.db.shape[0]})")
            sort = np.argsort(table_codes, kind="stable")
            ucodes, starts = np.unique(table_codes[sort], return_index=True)
            self.order.append(ids[sort])
            self.ucodes.append(ucodes)
            self.offsets.append(np.append(starts, sort.size).astype(np.int64))
            self.repeats |= ids.size != np.unique(ids).size
        if kernels == "numba":
            self._build_flat()

    def _build_flat(self) -> None:
        """What the compiled gather reads: all tables in one concatenation and, when every code is
        below 2^DENSE_MAX_BITS, a direct code -> bucket lookup per table."""
        self._flat_ucodes = np.concatenate(self.ucodes)
        self._flat_table_ptr = np.concatenate([[0], np.cumsum([u.size for u in self.ucodes])]).astype(np.int64)
        bases = np.concatenate([[0], np.cumsum([o.size for o in self.order])[:-1]])
        self._flat_offsets = np.concatenate([o + b for o, b in zip(self.offsets, bases)]).astype(np.int64)
        self._flat_order = np.concatenate(self.order)
        top = max(int(u[-1]) if u.size else 0 for u in self.ucodes)
        self._dense_bits = max(1, top.bit_length()) if top < 2 ** DENSE_MAX_BITS else 0
        size = 1 << self._dense_bits if self._dense_bits else 0
        self._dense = np.full(size * self.n_tables, -1, dtype=np.int32)
        if size:
            for t, u in enumerate(self.ucodes):
                self._dense[t * size + u] = np.arange(u.size, dtype=np.int32)

    @property
    def n_tables(self) -> int:
        """Number of tables L."""
        return len(self.order)

    @property
    def n(self) -> int:
        """Number of DB items."""
        return self.db.shape[0]

    def bucket_counts(self, table: int = 0) -> np.ndarray:
        """Occupancy of the non-empty buckets of one table (int64, in code order)."""
        return np.diff(self.offsets[table])

    def nbytes(self, include_db: bool = True) -> int:
        """Bytes of the CSR arrays of all tables, plus the re-rank embeddings if ``include_db``."""
        total = sum(a.nbytes for arrays in (self.order, self.ucodes, self.offsets) for a in arrays)
        if self.kernels == "numba":
            total += sum(a.nbytes for a in (self._flat_ucodes, self._flat_offsets, self._flat_order, self._dense))
        return total + (self.db.nbytes if include_db else 0)

    def gather(self, probes: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of every query: the union of its probed buckets over all tables.

        ``probes`` holds one int64 [nq, P] array of probe codes per table (a single 2-d
        array is accepted for one table). Returns ``(qidx, ids)``: parallel int64 arrays,
        one entry per distinct (query, DB id) pair, grouped by query in ascending order.
        """
        if isinstance(probes, np.ndarray) and probes.ndim == 2:
            probes = [probes]
        nq = probes[0].shape[0]
        return self.gather_pairs([(np.repeat(np.arange(nq), p.shape[1]), p.ravel()) for p in probes])

    def gather_pairs(self, probes: Sequence[tuple[np.ndarray, np.ndarray]],
                     repeated_codes: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """As ``gather``, from per-table ``(query, code)`` probe pairs (parallel int64 arrays, grouped
        by query ascending; a query may probe any number of codes). ``repeated_codes``: a query may
        probe one code twice, so the union must remove repeats even in a single table."""
        if len(probes) != self.n_tables:
            raise ValueError(f"got probes for {len(probes)} tables; the index has L={self.n_tables}")
        all_q, all_ids = [], []
        for (probe_q, probe_codes), ucodes, offsets, order in zip(probes, self.ucodes, self.offsets, self.order):
            pos = np.minimum(np.searchsorted(ucodes, probe_codes), ucodes.size - 1)
            hit = ucodes[pos] == probe_codes
            start = offsets[pos]
            length = np.where(hit, offsets[pos + 1] - start, 0)
            total = int(length.sum())
            ends = np.cumsum(length)
            # position t of the flat output reads order[start_of_its_run + (t - run_begin)]
            flat = np.repeat(start - (ends - length), length) + np.arange(total)
            all_ids.append(order[flat])
            all_q.append(np.repeat(probe_q, length))
        if self.n_tables == 1 and not (self.repeats or repeated_codes):
            return all_q[0], all_ids[0]
        key = np.unique(np.concatenate(all_q) * self.n + np.concatenate(all_ids))
        return key // self.n, key % self.n

    def rerank(self, q: np.ndarray, qidx: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Inner products <q[qidx[i]], db[ids[i]]> as float32; ``qidx`` must be grouped ascending."""
        return inner_products(self.db, q, qidx, ids)

    def search(self, q: np.ndarray, probes: Sequence[np.ndarray] | np.ndarray, k: int,
               clock: StageClock = _OFF) -> SearchResult:
        """Gather the probed buckets, re-rank by inner product, keep the top ``k`` per query."""
        if isinstance(probes, np.ndarray) and probes.ndim == 2:
            probes = [probes]
        nq = q.shape[0]
        if self.kernels == "numba":
            pairs = [(_probe_rows(nq, p.shape[1]), p.ravel()) for p in probes]
            return self._search_compiled(q, pairs, k, clock)
        qidx, ids = self.gather(probes)
        clock.lap("gather")
        return self._rank(q, qidx, ids, k, clock)

    def search_pairs(self, q: np.ndarray, probes: Sequence[tuple[np.ndarray, np.ndarray]], k: int,
                     clock: StageClock = _OFF) -> SearchResult:
        """``search`` from per-table ``(query, code)`` probe pairs (``gather_pairs``)."""
        if self.kernels == "numba":
            return self._search_compiled(q, probes, k, clock)
        qidx, ids = self.gather_pairs(probes)
        clock.lap("gather")
        return self._rank(q, qidx, ids, k, clock)

    def _rank(self, q: np.ndarray, qidx: np.ndarray, ids: np.ndarray, k: int, clock: StageClock) -> SearchResult:
        scores = self.rerank(q, qidx, ids)
        clock.lap("rerank")
        result = top_k(q.shape[0], qidx, ids, scores, k)
        clock.lap("topk")
        return result

    def _search_compiled(self, q: np.ndarray, pairs: Sequence[tuple[np.ndarray, np.ndarray]], k: int,
                         clock: StageClock) -> SearchResult:
        if len(pairs) != self.n_tables:
            raise ValueError(f"got probes for {len(pairs)} tables; the index has L={self.n_tables}")
        if len(pairs) == 1:
            probe_q, probe_codes = pairs[0]
        else:
            probe_q = np.concatenate([p[0] for p in pairs])
            probe_codes = np.concatenate([p[1] for p in pairs])
        probe_ptr = np.zeros(len(pairs) + 1, dtype=np.int64)
        probe_ptr[1:] = np.cumsum([p[0].size for p in pairs])
        dedup = self.n_tables > 1 or self.repeats  # as gather_pairs: repeats only across tables or buckets
        qptr, ids = hash_kernels.gather(q.shape[0], self.n, self._flat_table_ptr, self._flat_ucodes,
                                        self._flat_offsets, self._flat_order, probe_ptr,
                                        np.asarray(probe_q, dtype=np.int64), np.asarray(probe_codes, dtype=np.int64),
                                        dedup, self._dense, self._dense_bits)
        clock.lap("gather")
        scores = hash_kernels.rerank(self.db, q, qptr, ids)
        clock.lap("rerank")
        # where the reference orders a query's candidates by id (np.unique), ties go to the smaller id
        out_ids, out_scores, counts = hash_kernels.top_k(qptr, ids, scores, k, dedup)
        clock.lap("topk")
        return SearchResult(ids=out_ids, scores=out_scores, candidates=counts)


@lru_cache(maxsize=64)
def _probe_rows(nq: int, n_probes: int) -> np.ndarray:
    """``np.repeat(np.arange(nq), n_probes)``, read-only: the query of each dense probe."""
    out = np.repeat(np.arange(nq, dtype=np.int64), n_probes)
    out.flags.writeable = False
    return out


def inner_products(db: np.ndarray, q: np.ndarray, qidx: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Inner products <q[qidx[i]], db[ids[i]]> as float32; ``qidx`` must be grouped ascending.

    One small gather and matrix-vector product per query: far faster than one big
    [T, d] gather, which runs out of cache.
    """
    scores = np.empty(ids.size, dtype=np.float32)
    bounds = np.searchsorted(qidx, np.arange(q.shape[0] + 1))
    for i in np.flatnonzero(np.diff(bounds)):
        lo, hi = bounds[i], bounds[i + 1]
        scores[lo:hi] = db[ids[lo:hi]] @ q[i]
    return scores


def top_k(nq: int, qidx: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int) -> SearchResult:
    """The ``k`` best-scored candidates of each of ``nq`` queries, as a padded SearchResult.

    ``qidx``, ``ids`` and ``scores`` are parallel: one entry per distinct (query, DB id)
    candidate, grouped by query in ascending order. ``candidates`` counts the entries of
    each query; ties in score keep the given order.
    """
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    counts = np.bincount(qidx, minlength=nq).astype(np.int64)
    if ids.size:
        # by query, then score descending; ties keep the given order (probe order, then id)
        order = np.argsort(_query_score_key(qidx, scores), kind="stable")
        group_start = np.cumsum(counts) - counts
        rank = np.arange(ids.size) - np.repeat(group_start, counts)
        keep = order[rank < k]
        kept_rank = rank[rank < k]
        out_ids[qidx[keep], kept_rank] = ids[keep]
        out_scores[qidx[keep], kept_rank] = scores[keep]
    return SearchResult(ids=out_ids, scores=out_scores, candidates=counts)
