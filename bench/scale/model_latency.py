"""The fingerprint-model validation's latency, timed interleaved: each point the two sides share,
built over the real DB and over the model DB of the same size, the two alternated query by query
over the same timed queries (:func:`bench.measure.timing.time_alternating`: A B on query 1, B A on
query 2, ...), so that the machine's drift falls on both alike. Exhaustive search is the control:
it does the same work on both DBs, so its ratio must come out equivalent. The sweeps of the two
sides time their points one run after the other, hours apart on a shared machine, which no
interval can account for.

Written to ``latency_interleaved.parquet`` (one row per point, size and timed query) point by point,
so an interrupted validation resumes where it stopped. Each row names the two sides' embedding
stores; rows timed over other stores (a refitted model's, say) are timed again."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.timing import time_alternating
from bench.run.guard import guarded, read_only
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.runner import fit_method, timed_query_rows
from bench.run.store import POINTS
from datasets.cache import atomic_write_parquet

from .config import ScaleConfig
from .database import build_scale_db, sized_inputs
from .model_validation import LATENCY_PARQUET, REAL_DIR, SYNTHETIC_DIR, model_sizes, side_info
from .sweep import STATUS_OK, built_at

ROUNDS = 2  # alternated rounds of each pair
TIMING = "per-query"  # how the file's rows were timed; rows timed otherwise are timed again


def _time_pair(sized: RunInputs, methods: list, query_params: str, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query latencies (ms, the median of ``rounds``) of ``methods`` (real side first) alternated
    over the run's timed queries on its timing threads; with the timed query ids."""
    cfg = sized.config
    timed, rows = timed_query_rows(sized)
    queries = [read_only(sized.matrices(m.input_kind)[1]) for m in methods]
    params = [json.loads(query_params)] * len(methods)
    with threadpool_limits(limits=cfg.timing.threads), guarded("model validation", "alternated timing",
                                                               cfg.call_limit_s):
        seconds = time_alternating(methods, queries, rows, cfg.k, cfg.timing.warmup, rounds, params)
    return np.median(seconds, axis=1) * 1e3, sized.manifest["query_id"].to_numpy()[timed]


def side_stores(root: Path | str) -> dict[str, str]:
    """The embedding store key of each side of the validation in ``root`` (from its run.json)."""
    return {side: side_info(root, side)["store"]["key"] for side in (REAL_DIR, SYNTHETIC_DIR)}


def time_sides(sides: dict[str, ScaleConfig], root: Path | str, rounds: int = ROUNDS,
               progress: bool = True) -> pd.DataFrame:
    """Time every finished point of the synthetic side (``root/synthetic``) at every size holding
    model rows, alternated with the same point on the real side's DB (module docstring). ``sides``:
    :func:`bench.scale.model_validation.sides` of the config. Columns: label, query_params, n_db,
    query_id, latency_real_ms, latency_synthetic_ms (each the median of the rounds), timing, and
    the two sides' store keys (store_real, store_synthetic)."""
    root = Path(root)
    path = root / LATENCY_PARQUET
    stores = side_stores(root)
    done = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["label", "query_params", "n_db"])
    current = {"timing": TIMING, **{f"store_{side}": key for side, key in stores.items()}}
    if set(current) <= set(done.columns):
        done = done[np.logical_and.reduce([done[c] == v for c, v in current.items()])]
    else:
        done = done.iloc[:0]
    finished = set(zip(done["label"], done["query_params"], done["n_db"]))
    points = pd.read_parquet(root / SYNTHETIC_DIR / POINTS)
    points = points[(points["status"] == STATUS_OK) & points["latency_mean_ms"].notna()]
    sizes = [n for n in model_sizes(root) if n in set(points["n_db"])]
    todo = points[points["n_db"].isin(sizes)]
    todo = todo[[(r.label, r.query_params, r.n_db) not in finished for r in todo.itertuples()]]
    if todo.empty:
        return done
    inputs = prepare_inputs(sides[REAL_DIR].run, progress)
    dbs = {side: build_scale_db(config, inputs, progress) for side, config in sides.items()}
    fitted = {}
    frames = [done] if len(done) else []
    for n in sorted(set(todo["n_db"])):
        sized = {side: sized_inputs(inputs, db, n) for side, db in dbs.items()}
        for (name, label, build_params), group in todo[todo["n_db"] == n].groupby(["method", "label", "build_params"],
                                                                                  sort=True):
            if label not in fitted:
                fitted[label] = fit_method(name, json.loads(build_params), inputs)
            built = [built_at(sized[side], fitted[label]).method for side in (REAL_DIR, SYNTHETIC_DIR)]
            for qp in group["query_params"]:
                ms, ids = _time_pair(sized[REAL_DIR], built, qp, rounds)  # the same queries on both sides
                frame = pd.DataFrame({"label": label, "query_params": qp, "n_db": n, "query_id": ids,
                                      "latency_real_ms": ms[0], "latency_synthetic_ms": ms[1], **current})
                frames.append(frame)
                atomic_write_parquet(path, pd.concat(frames, ignore_index=True))
                if progress:
                    print(f"alternated latency, N={n:,} {label} {qp}: real {ms[0].mean():.2f} ms, "
                          f"synthetic {ms[1].mean():.2f} ms", flush=True)
            del built
    return pd.concat(frames, ignore_index=True)
