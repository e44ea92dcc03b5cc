"""The compared points timed again, interleaved: the sweep points a decided speedup reads
(``bench.measure.operating_points.compared_points`` at the fixed target) timed together in
rounds over the same timed queries (``bench.measure.timing.time_interleaved``), so that the
machine's drift during the run falls on every method compared alike.

A run's sweep times each point alone, one after another; the re-timing runs once the sweep is
done (at a scaling run, once each size is), as its own part of the run folder, so an interrupted
run resumes it and a finished one is reused while the selection and repeat count stand. Its
per-query latencies (the median of the rounds, every round kept) join the run's outcomes as
``retimed_ms``, which the decided speedups read in place of the sweep's ``latency_ms``.

With ``timing.interleave: pairs`` (``bench.run.config.INTERLEAVE``) the compared points are timed
in groups instead, the focus method's with one other method's at a time, each group its own part
(``<part> beside <other>``), so that only two methods' indexes are in memory at once: at 10M rows
every compared index together did not fit beside the memory-mapped DB rows in 24 GB. A point's
latency re-timed beside ``other``'s joins the outcomes as ``retimed_ms:<other>``
(:func:`paired_column`), and a decided speedup reads the pair's two columns.
"""
from __future__ import annotations

import json
from typing import Callable

import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.operating_points import FOCUS, REFERENCE, TARGET_SHARES, compared_points
from bench.measure.timing import time_interleaved
from datasets.cache import atomic_write_parquet
from methods.base import Method

from .guard import guarded, read_only
from .inputs import RunInputs
from .store import OUTCOMES, POINTS, RunStore

#: Outcomes column: a re-timed point's per-query latency (ms), the median of its interleaved rounds.
RETIMED_MS = "retimed_ms"
#: Points column: a re-timed point's mean latency (ms) over the timed queries.
RETIMED_MEAN_MS = "retimed_mean_ms"
#: Part name of a run's re-timing.
RETIMED_PART = "retimed"
#: Re-timing column: the method the row's point was timed beside ("" where every point was timed together).
BESIDE = "beside"


def paired_column(other: str, column: str = RETIMED_MS) -> str:
    """The outcomes (``retimed_ms``) or points (``retimed_mean_ms``) column of a point re-timed
    beside ``other``'s points (``timing.interleave: pairs``); ``column`` itself for ``other`` "":
    every compared point timed together."""
    return f"{column}:{other}" if other else column


def retime_groups(selection: pd.DataFrame, interleave: str, part: str,
                  focus: str = FOCUS) -> list[tuple[str, pd.DataFrame]]:
    """The groups ``selection`` is re-timed in (``timing.interleave``), each with its part name:
    "all", the whole selection as ``part``; "pairs", for each other method (by name) the focus
    method's points and its, as ``<part> beside <other>``. Each group's column ``beside`` names the
    method its rows are timed beside. Pairs fall back to one group when the focus method is not
    among the selection, or is alone in it."""
    methods = sorted(set(selection["method"]))
    if interleave == "all" or focus not in methods or len(methods) < 2:
        return [(part, selection.assign(**{BESIDE: ""}))]
    groups = []
    for other in [m for m in methods if m != focus]:
        pair = selection[selection["method"].isin([focus, other])]
        beside = pair["method"].map({focus: other, other: focus})
        groups.append((f"{part} beside {other}", pair.assign(**{BESIDE: beside}).reset_index(drop=True)))
    return groups


def select_compared(points: pd.DataFrame, shares: tuple[float, ...] = TARGET_SHARES,
                    skip: tuple[str, ...] = (REFERENCE,)) -> pd.DataFrame:
    """The points to re-time: every method's :func:`compared_points` at each of ``shares`` of the
    reference's highest exact hit rate (their union), except the methods in ``skip`` and those
    whose latency was not measured. ``skip`` holds exhaustive search by default, as a scaling run
    needs: at a million segments timing it over and over would cost more than all the others
    together, and the speedups over it are then read at sweep latencies on both sides; ``bench run``
    re-times it with the rest. Columns: method, label, build_params, query_params, in a fixed
    order; empty without the reference."""
    cols = ["method", "label", "build_params", "query_params"]
    ref = points[points["method"] == REFERENCE]
    timed = points[points["latency_mean_ms"].notna()] if "latency_mean_ms" in points else points.iloc[:0]
    if ref.empty or timed.empty:
        return pd.DataFrame(columns=cols)
    best = float(ref["exact"].max())
    chosen = [compared_points(group, share * best) for name, group in timed.groupby("method", sort=True)
              if name not in skip for share in shares]
    if not chosen:
        return pd.DataFrame(columns=cols)
    picked = pd.concat(chosen)[cols].drop_duplicates(["label", "query_params"])
    return picked.sort_values(["method", "label", "query_params"]).reset_index(drop=True)


def retime(entries: list[tuple[str, str, Method]], inputs: RunInputs, rows_of: Callable,
           beside: list[str] | None = None) -> pd.DataFrame:
    """Time ``entries`` (label, query_params JSON, built method; points may share a method) in
    ``inputs.config.timing.interleaved_repeats`` interleaved rounds over the run's timed queries
    on its timing threads. ``rows_of(inputs)`` gives (timed query numbers, their query-segment rows).
    Returns one row per point and timed query: label, query_params, query_id, ``beside`` (the
    entry's from ``beside``, a group's column of :func:`retime_groups`; "" without it),
    ``retimed_ms`` and every round's ``retimed_rep<r>_ms``."""
    cfg = inputs.config
    timed, rows = rows_of(inputs)
    methods = [m for _, _, m in entries]
    queries = [read_only(inputs.matrices(m.input_kind)[1]) for m in methods]
    params = [json.loads(qp) for _, qp, _ in entries]
    what = f"{len(entries)} points: {', '.join(sorted({label for label, _, _ in entries}))}"
    with threadpool_limits(limits=cfg.timing.threads), guarded(what, "interleaved timing", cfg.call_limit_s):
        timings = time_interleaved(methods, queries, rows, cfg.k, cfg.timing.warmup,
                                   cfg.timing.interleaved_repeats, params)
    ids = inputs.manifest["query_id"].to_numpy()[timed]
    frames = []
    for (label, qp, _), timing, other in zip(entries, timings, beside or [""] * len(entries)):
        frame = pd.DataFrame({"label": label, "query_params": qp, "query_id": ids, BESIDE: other,
                              RETIMED_MS: timing.seconds * 1e3})
        for r, rep in enumerate(timing.repeats):
            frame[f"retimed_rep{r}_ms"] = rep * 1e3
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def selection_key(selection: pd.DataFrame) -> list[list[str]]:
    """What a re-timing part records of its selection, to tell whether it still stands."""
    return selection[["label", "query_params"]].values.tolist()


def finished_retime(store: RunStore, part: str, selection: pd.DataFrame, repeats: int) -> bool:
    """Whether ``part`` holds the re-timing of ``selection`` at ``repeats`` rounds (saying why not
    when one is there but no longer stands)."""
    meta, damaged = store.part_meta(part)
    if damaged:
        print(f"{part}: damaged ({damaged}); timing it again")
        return False
    if meta is None:
        return False
    if meta.get("selection") != selection_key(selection) or meta.get("repeats") != repeats:
        print(f"{part}: the compared points or the rounds changed since it was timed; timing it again")
        return False
    print(f"{part}: done in an earlier run, skipped")
    return True


def save_retime(store: RunStore, part: str, frame: pd.DataFrame, selection: pd.DataFrame, repeats: int,
                extra: dict | None = None) -> None:
    """Store a finished re-timing as the part ``part`` (its rows as the part's outcomes)."""
    store.save_part(part, pd.DataFrame(), pd.DataFrame(), frame,
                    {"kind": "retime", "selection": selection_key(selection), "repeats": repeats, **(extra or {})})


def merge_retimed(store: RunStore, parts: list[str], keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Join the re-timings of ``parts`` (those finished) into the run's combined outcomes (column
    ``retimed_ms``, or ``retimed_ms:<other>`` for a point timed beside ``other``'s) and points
    (``retimed_mean_ms``, ``retimed_mean_ms:<other>``), matched on label, query_params and ``keys``
    (``n_db`` at a scaling run); returns the joined re-timings. Earlier re-timing columns go."""
    frames = []
    for part in parts:
        meta, damaged = store.part_meta(part)
        if meta is not None and not damaged:
            frames.append(store.part_table(part, "outcomes"))
    retimed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["label", "query_params", *keys, "query_id", RETIMED_MS])
    if BESIDE not in retimed:  # a part timed before the pairs
        retimed[BESIDE] = ""
    retimed[BESIDE] = retimed[BESIDE].fillna("")
    on = ["label", "query_params", *keys]
    outcomes = _without_retimed(pd.read_parquet(store.root / OUTCOMES), RETIMED_MS)
    points = _without_retimed(pd.read_parquet(store.root / POINTS), RETIMED_MEAN_MS)
    for other in sorted(set(retimed[BESIDE]) | {""}):
        group = retimed[retimed[BESIDE] == other]
        column = paired_column(other)
        outcomes = outcomes.merge(group[[*on, "query_id", RETIMED_MS]].rename(columns={RETIMED_MS: column}),
                                  on=[*on, "query_id"], how="left")
        means = group.groupby(on, as_index=False)[RETIMED_MS].mean().rename(
            columns={RETIMED_MS: paired_column(other, RETIMED_MEAN_MS)})
        points = points.merge(means, on=on, how="left")
    atomic_write_parquet(store.root / OUTCOMES, outcomes)
    atomic_write_parquet(store.root / POINTS, points)
    return retimed


def _without_retimed(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if c == column or c.startswith(f"{column}:")])
