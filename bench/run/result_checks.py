"""Checks on what a method's ``search`` returns, at the harness boundary, before any number is computed.

A plugin's bug must stop the run with a clear message rather than turn into plausible numbers
(negative candidates shown as "-100% of the DB", duplicate ids voting twice, NaN scores). The
rules are those of ``methods.base.SearchResult``:

- ``ids`` int [nq, k], each in [-1, N); ``-1`` (nothing found) only after every found id of its row;
  no id twice in a row;
- ``scores`` float [nq, k], finite where an id was found, non-increasing along the row;
- ``candidates`` int [nq], at least the number of ids found in the row and at most N.

The checks run on the untimed accuracy pass of every sweep point, so they cost no latency.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

SCORE_TOLERANCE = 1e-6  # float32 re-ranking may reorder exact ties by a rounding step


class MethodResultError(ValueError):
    """A method returned a SearchResult that breaks a rule; the message names the method, the rule
    and an example row."""


def _example(ids: Any, scores: Any, candidates: Any, row: int) -> str:
    def cell(a: Any) -> str:
        try:
            return np.array2string(np.asarray(a)[row], threshold=12, precision=4, separator=", ")
        except (IndexError, TypeError, ValueError):
            return "?"
    return f"row {row}: ids={cell(ids)}, scores={cell(scores)}, candidates={cell(candidates)}"


def check_search_result(result: Any, method: str, query_params: dict, nq: int, k: int, n_db: int) -> None:
    """Raise MethodResultError unless ``result`` answers ``nq`` queries with top-``k`` ids of a DB of
    ``n_db`` items by the rules above; ``method`` and ``query_params`` name the configuration."""
    where = f"method {method} at {json.dumps(query_params, sort_keys=True)}"

    def fail(rule: str, row: int | None = None) -> None:
        example = f"; {_example(ids, scores, candidates, row)}" if row is not None else ""
        raise MethodResultError(f"{where} returned an invalid search result: {rule}{example}")

    ids = getattr(result, "ids", None)
    scores = getattr(result, "scores", None)
    candidates = getattr(result, "candidates", None)
    if ids is None or scores is None or candidates is None:
        fail(f"expected a methods.base.SearchResult (ids, scores, candidates), got {type(result).__name__}")
    for name, value, dtype_kind, shape in (("ids", ids, "iu", (nq, k)), ("scores", scores, "f", (nq, k)),
                                           ("candidates", candidates, "iu", (nq,))):
        if not isinstance(value, np.ndarray):
            fail(f"{name} must be a NumPy array, got {type(value).__name__}")
        if value.shape != shape:
            fail(f"{name} has shape {value.shape}; expected {shape} ({nq} query rows, k={k})")
        if value.dtype.kind not in dtype_kind:
            expected = "an integer" if dtype_kind == "iu" else "a floating-point"
            fail(f"{name} has dtype {value.dtype}; expected {expected} dtype")
    if nq == 0:
        return
    bad = np.flatnonzero(((ids < -1) | (ids >= n_db)).any(axis=1))
    if bad.size:
        fail(f"ids must lie in [-1, {n_db}) (-1 = nothing found; the DB holds {n_db} items)", int(bad[0]))
    found = ids >= 0
    bad = np.flatnonzero((~found[:, :-1] & found[:, 1:]).any(axis=1))
    if bad.size:
        fail("-1 padding must come after every found id of its row", int(bad[0]))
    ordered = np.sort(ids, axis=1)
    bad = np.flatnonzero(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1))
    if bad.size:
        fail("an id appears twice in one row", int(bad[0]))
    bad = np.flatnonzero((found & ~np.isfinite(scores)).any(axis=1))
    if bad.size:
        fail("scores must be finite wherever an id was found (NaN or inf seen)", int(bad[0]))
    with np.errstate(invalid="ignore"):  # -inf padding; only rows' found entries are compared
        rising = scores[:, 1:] > scores[:, :-1] + SCORE_TOLERANCE * np.maximum(1.0, np.abs(scores[:, :-1]))
    bad = np.flatnonzero((rising & found[:, 1:]).any(axis=1))
    if bad.size:
        fail("scores must be in descending order along each row (best first)", int(bad[0]))
    n_found = found.sum(axis=1)
    bad = np.flatnonzero(candidates < n_found)
    if bad.size:
        fail("candidates (DB items scored) must be at least the number of ids returned", int(bad[0]))
    bad = np.flatnonzero(candidates > n_db)
    if bad.size:
        fail(f"candidates (DB items scored) must be at most the DB size {n_db}", int(bad[0]))


def check_stage_times(stage_seconds: dict[str, float], call_seconds: float, method: str, query_params: dict) -> float:
    """The share of the whole timed call that the method's stage marks account for (``stage_coverage``).

    The stages are timed inside the calls, so they cannot add up to more than the calls took: a sum
    above it (by more than a microsecond or 1%) means a method marked a stage outside its search,
    and raises MethodResultError."""
    total = sum(stage_seconds.values())
    if total > call_seconds * 1.01 + 1e-6:
        raise MethodResultError(
            f"method {method} at {json.dumps(query_params, sort_keys=True)}: its stages add up to "
            f"{total * 1e6:.1f} us a call, more than the {call_seconds * 1e6:.1f} us the whole call took "
            f"(a stage marked outside search?): {stage_seconds}")
    return total / call_seconds if call_seconds > 0 else float("nan")
