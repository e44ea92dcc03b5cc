"""The one interface every search method implements, and the checks they all share.

A method is constructed with its build parameters, optionally ``fit`` on train-split
embeddings, ``build`` over the database, given query parameters, then searched. The public
methods here validate input and set thread counts; subclasses implement the ``_fit``,
``_build``, ``_search`` and ``_stats`` hooks. Methods never time themselves; they only mark
where each stage of a search ends (``self.clock.lap``, ``methods/stages.py``), and the harness
decides whether those marks are read.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from methods.stages import StageClock

INPUT_KINDS = ("embedding", "spectrogram", "audio")
#: Columns ahead of the samples in an "audio" method's query rows: the query's number in the
#: batch and the segment's index ``j`` within its query (see :class:`AudioDB`).
AUDIO_QUERY_HEADER = ("query", "j")


@dataclass
class TrainData:
    """What ``fit()`` may learn from: train-split embeddings only. The held-out pairs come from
    train tracks that no fitting pair comes from: a method's early stopping reads them, never its fit."""

    anchors: np.ndarray    # [n, d] float32, clean segments
    positives: np.ndarray  # [n, d] float32, the same segments degraded (row i pairs with anchors[i])
    held_anchors: np.ndarray | None = None    # [m, d] float32, pairs from held-out train tracks
    held_positives: np.ndarray | None = None  # [m, d] float32 (row i pairs with held_anchors[i])


@dataclass
class AudioDB:
    """What an "audio" method (an end-to-end system that analyses raw audio itself) builds over:
    the DB tracks' waveforms and where each track's segments sit among the DB rows.

    Its query rows are the run's query segments, one per row as for every method, each
    ``[query, j, samples...]`` (:data:`AUDIO_QUERY_HEADER`, then ``segment_samples`` samples):
    rows of one batch with the same ``query`` number are one query, segment ``j`` starting ``j``
    hops after its start, so the method can rejoin them into the query's audio and analyse it once.
    """

    sample_rate: int
    segment_s: float
    hop_s: float
    tracks: list[np.ndarray]        # mono float32 waveform of each DB track
    segment_rows: list[np.ndarray]  # segment_rows[t][s]: the DB row of track t's segment s (int64)

    def __post_init__(self) -> None:
        if len(self.tracks) != len(self.segment_rows):
            raise ValueError(f"AudioDB: {len(self.tracks)} tracks but {len(self.segment_rows)} segment-row arrays")
        if not 0 < self.hop_s <= self.segment_s:
            raise ValueError(f"AudioDB: hop_s={self.hop_s} must lie in (0, segment_s={self.segment_s}]")
        rows = np.concatenate(self.segment_rows) if self.segment_rows else np.zeros(0, np.int64)
        if not np.array_equal(np.sort(rows), np.arange(len(rows))):
            raise ValueError("AudioDB: the tracks' segment rows must number the DB rows 0..n-1, each once")

    @property
    def n_rows(self) -> int:
        """DB rows (segments) over all tracks."""
        return int(sum(len(r) for r in self.segment_rows))

    @property
    def segment_samples(self) -> int:
        """Samples in one segment."""
        return round(self.segment_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        """Samples between the starts of consecutive segments."""
        return round(self.hop_s * self.sample_rate)

    @property
    def query_width(self) -> int:
        """Columns of a query row: the header and one segment's samples."""
        return len(AUDIO_QUERY_HEADER) + self.segment_samples


def audio_query_rows(segments: np.ndarray, query: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Query rows of an "audio" method (:class:`AudioDB`): ``segments`` [n, samples] with each row's
    query number and segment index in front."""
    head = np.stack([np.asarray(query, np.float32), np.asarray(j, np.float32)], axis=1)
    return np.ascontiguousarray(np.concatenate([head, np.asarray(segments, np.float32)], axis=1))


@dataclass
class SearchResult:
    """Top-k answer for a batch of queries."""

    ids: np.ndarray         # [nq, k] int64 DB row ids, -1 padding when fewer than k candidates
    scores: np.ndarray      # [nq, k] float32 inner products, descending per row, -inf padding
    candidates: np.ndarray  # [nq] int64: DB vectors whose embedding was scored (the "work")


def check_int_range(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in ``[lo, hi]``, else raise a ValueError naming it."""
    allowed = f"{lo} <= {name} <= {hi}" if hi is not None else f"{name} >= {lo}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is not an integer; allowed: {allowed}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")
    return int(value)


def check_float_range(name: str, value: Any, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    """Return ``value`` as float if it is a real number in range, else raise a ValueError naming it."""
    op = "<" if lo_open else "<="
    allowed = f"{lo} {op} {name}" + (f" <= {hi}" if hi is not None else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}")
    if not np.isfinite(value) or value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of: {', '.join(choices)}")
    return value


def as_matrix(name: str, x: np.ndarray, d: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 [n, d] array (a 1-d vector becomes one row).

    Raises ValueError when ``x`` is not 1- or 2-d, is empty, or its width differs from ``d``.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty [n, d] array, got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} has dimension d={x.shape[1]}; the index expects d={d}")
    return np.ascontiguousarray(x, dtype=np.float32)


class Method:
    """Base class of all search methods (see module docstring for the life cycle)."""

    name: ClassVar[str] = ""
    build_defaults: ClassVar[dict[str, Any]] = {}  # build parameters and their defaults
    query_defaults: ClassVar[dict[str, Any]] = {}  # query parameters and their defaults
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    approximate_scores: ClassVar[bool] = False  # True when scores are estimates (e.g. PQ), not exact <q, x>
    # False for a library that does not report how many DB items a search scored (hnswlib, ScaNN):
    # its SearchResult.candidates then only need to satisfy the contract, and the harness records
    # candidates as not measured (NaN) instead of reading them as the work done
    counts_candidates: ClassVar[bool] = True
    config_file: ClassVar[str | None] = None     # grid file; default: <name>.yml beside the defining module
    # What build() and search() are given (INPUT_KINDS): "embedding", the encoder's L2-normalised
    # embeddings (the default), or "spectrogram", the harness's fixed-size log-mel image of each
    # segment (encoders/spectral.py), flattened [n, bands * frames], or "audio", the raw audio of
    # the DB tracks (an AudioDB) and query rows of raw segments (an end-to-end system that does its
    # own analysis inside search). Rows are DB segments / query segments in every case. Train pairs
    # exist only as embeddings, so a non-embedding method must not override _fit (register() refuses it).
    input_kind: ClassVar[str] = "embedding"
    # True when search() itself spreads a batch of queries over ``threads`` (faiss's OpenMP, a
    # library's thread pool); False when it searches a batch on one thread and is safe to call
    # from several threads at once on parts of the batch, its work releasing the GIL (compiled
    # kernels, BLAS): the harness's untimed accuracy pass then splits the batch over threads itself
    threads_over_batch: ClassVar[bool] = True

    def __init__(self, seed: int = 0, threads: int = 1, device: str = "cpu", **build_params: Any) -> None:
        """Store seed, thread count, device and the build parameters (defaults filled in)."""
        unknown = sorted(set(build_params) - set(self.build_defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown build parameter(s) {unknown}; "
                             f"allowed: {sorted(self.build_defaults) or 'none'}")
        self.seed = check_int_range("seed", seed, 0)
        self.threads = check_int_range("threads", threads, 1)
        if not isinstance(device, str) or not any(device == dev or device.startswith(dev + ":")
                                                  for dev in self.devices):
            raise ValueError(f"{self.name}: device={device!r} is not supported; allowed: {', '.join(self.devices)}")
        self.device = device
        self.params: dict[str, Any] = {**self.build_defaults, **build_params}
        self._check_build_params(self.params)
        self.query_params: dict[str, Any] = dict(self.query_defaults)
        self.d: int | None = None
        self.n = 0
        self.fit_d: int | None = None  # dimension of the train data, once fit() has run
        self.clock = StageClock()
        self._apply_threads()

    @classmethod
    def config_path(cls) -> Path:
        """The method's YAML grid file: ``config_file``, else ``<name>.yml`` beside its module."""
        if cls.config_file is not None:
            return Path(cls.config_file)
        module = sys.modules.get(cls.__module__)
        if module is None or getattr(module, "__file__", None) is None:
            raise FileNotFoundError(f"cannot locate the module of {cls.__qualname__}; set its config_file")
        return Path(module.__file__).with_name(f"{cls.name}.yml")

    # ---- public life cycle -------------------------------------------------------------

    def fit(self, train: TrainData) -> None:
        """Learn from train-split embeddings (anchor/positive pairs); a no-op for many methods."""
        anchors = as_matrix("train.anchors", train.anchors)
        positives = as_matrix("train.positives", train.positives, anchors.shape[1])
        if positives.shape != anchors.shape:
            raise ValueError(f"train.positives has shape {positives.shape}; it must match "
                             f"train.anchors {anchors.shape} row for row")
        held = (None, None)
        if (train.held_anchors is None) != (train.held_positives is None):
            raise ValueError("train.held_anchors and train.held_positives come together: give both or neither")
        if train.held_anchors is not None:
            held = (as_matrix("train.held_anchors", train.held_anchors, anchors.shape[1]),
                    as_matrix("train.held_positives", train.held_positives, anchors.shape[1]))
            if held[0].shape != held[1].shape:
                raise ValueError(f"train.held_positives has shape {held[1].shape}; it must match "
                                 f"train.held_anchors {held[0].shape} row for row")
        self._apply_threads()
        self._fit(TrainData(anchors, positives, *held))
        self.fit_d = anchors.shape[1]

    def build(self, db: np.ndarray | AudioDB) -> None:
        """Index the database embeddings ``db`` [N, d]; row i gets id i. An "audio" method is given
        an :class:`AudioDB` instead, whose segment rows are the ids."""
        if self.input_kind == "audio":
            if not isinstance(db, AudioDB):
                raise ValueError(f"{self.name}: an audio method builds over a methods.base.AudioDB, "
                                 f"not {type(db).__name__}")
            self._apply_threads()
            self._build(db)
            self.n, self.d = db.n_rows, db.query_width
            return
        db = as_matrix("db", db, self.fit_d)
        self._apply_threads()
        self._build(db)
        self.n, self.d = db.shape

    def warm_up(self) -> None:
        """Compile what ``search`` runs (JIT kernels) ahead of any timed call; call it after ``fit``.

        The harness times it apart from fit and build (the ``jit_s`` column); a no-op by default."""
        self._apply_threads()
        self._warm_up()

    def set_query_params(self, **params: Any) -> None:
        """Set query-time parameters (e.g. radius, n_probes, nprobe, efSearch)."""
        unknown = sorted(set(params) - set(self.query_defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown query parameter(s) {unknown}; "
                             f"allowed: {sorted(self.query_defaults) or 'none'}")
        merged = {**self.query_params, **params}
        self._check_query_params(merged)
        self.query_params = merged

    def search(self, q: np.ndarray, k: int) -> SearchResult:
        """Top-``k`` DB ids by inner product for each row of ``q`` (float32 or float64, [nq, d])."""
        self.clock.start()
        if self.d is None:
            raise RuntimeError(f"{self.name}: call build() before search()")
        if not (type(q) is np.ndarray and q.dtype == np.float32 and q.ndim == 2 and q.shape[1] == self.d
                and q.shape[0] and q.flags.c_contiguous):  # the harness's own queries skip the conversion
            q = as_matrix("q", q, self.d)
        if type(k) is not int or k < 1:
            k = check_int_range("k", k, 1)
        self._apply_threads()
        self.clock.lap("checks")
        result = self._search(q, k)
        self.clock.lap("rest")
        return result

    def stats(self) -> dict[str, Any]:
        """Index facts: ``index_bytes``, ``n``, ``d``, plus method-specific entries."""
        if self.d is None:
            raise RuntimeError(f"{self.name}: call build() before stats()")
        return {"n": self.n, "d": self.d, **self._stats()}

    # ---- hooks for subclasses ----------------------------------------------------------

    def _check_build_params(self, params: dict[str, Any]) -> None:
        """Raise ValueError for bad build parameters."""

    def _check_query_params(self, params: dict[str, Any]) -> None:
        """Raise ValueError for bad query parameters."""

    def _fit(self, train: TrainData) -> None:
        """Learn from validated train data; default: nothing to learn."""

    def _warm_up(self) -> None:
        """Compile the method's search kernels; default: nothing to compile."""

    def _build(self, db: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        raise NotImplementedError

    def _stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def _apply_threads(self) -> None:
        """Set library thread pools to ``self.threads``; subclasses add what they use."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}, seed={self.seed}, threads={self.threads})"


def pad_result(ids: np.ndarray, scores: np.ndarray, candidates: np.ndarray) -> SearchResult:
    """A SearchResult with dtypes fixed and every ``-1`` id given a ``-inf`` score."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32).copy()
    scores[ids < 0] = -np.inf
    return SearchResult(ids=ids, scores=scores, candidates=np.asarray(candidates, dtype=np.int64))
