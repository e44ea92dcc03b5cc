"""The fingerprint-model validation's latency, timed interleaved: each point the two sides share,
built over the real DB and over the model DB of the same size, the two timed in rounds (A B, B A,
...) over the same timed queries (:func:`bench.run.retime.retime`), so that the machine's drift
falls on both alike. Exhaustive search is the control: it does the same work on both DBs, so its
ratio must come out equivalent. The sweeps of the two sides time their points one run after the
other, hours apart on a shared machine, which no interval can account for.

Written to ``latency_interleaved.parquet`` (one row per point, size and timed query) point by point,
so an interrupted validation resumes where it stopped."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.retime import RETIMED_MS, retime
from bench.run.runner import fit_method, timed_query_rows
from bench.run.store import POINTS
from datasets.cache import atomic_write_parquet

from .config import ScaleConfig
from .database import build_scale_db, sized_inputs
from .model_validation import LATENCY_PARQUET, REAL_DIR, SYNTHETIC_DIR, model_sizes
from .sweep import STATUS_OK, built_at

ROUNDS = 2  # interleaved rounds of each pair


def _with_rounds(inputs: RunInputs, rounds: int) -> RunInputs:
    timing = replace(inputs.config.timing, interleaved_repeats=rounds)
    return replace(inputs, config=replace(inputs.config, timing=timing))


def time_sides(sides: dict[str, ScaleConfig], root: Path | str, rounds: int = ROUNDS,
               progress: bool = True) -> pd.DataFrame:
    """Time every finished point of the synthetic side (``root/synthetic``) at every size holding
    model rows, interleaved with the same point on the real side's DB (module docstring). ``sides``:
    :func:`bench.scale.model_validation.sides` of the config. Columns: label, query_params, n_db,
    query_id, latency_real_ms, latency_synthetic_ms (each the median of the rounds)."""
    root = Path(root)
    path = root / LATENCY_PARQUET
    done = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["label", "query_params", "n_db"])
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
        sized = {side: _with_rounds(sized_inputs(inputs, db, n), rounds) for side, db in dbs.items()}
        for (name, label, build_params), group in todo[todo["n_db"] == n].groupby(["method", "label", "build_params"],
                                                                                  sort=True):
            if label not in fitted:
                fitted[label] = fit_method(name, json.loads(build_params), inputs)
            built = {side: built_at(sized[side], fitted[label]) for side in (REAL_DIR, SYNTHETIC_DIR)}
            for qp in group["query_params"]:
                entries = [(side, qp, built[side].method) for side in (REAL_DIR, SYNTHETIC_DIR)]
                timed = retime(entries, sized[REAL_DIR], timed_query_rows)  # the same queries on both sides
                wide = timed.pivot(index="query_id", columns="label", values=RETIMED_MS)
                frame = pd.DataFrame({"label": label, "query_params": qp, "n_db": n, "query_id": wide.index,
                                      "latency_real_ms": wide[REAL_DIR].to_numpy(),
                                      "latency_synthetic_ms": wide[SYNTHETIC_DIR].to_numpy()})
                frames.append(frame)
                atomic_write_parquet(path, pd.concat(frames, ignore_index=True))
                if progress:
                    print(f"interleaved latency, N={n:,} {label} {qp}: real {frame['latency_real_ms'].mean():.2f} ms, "
                          f"synthetic {frame['latency_synthetic_ms'].mean():.2f} ms", flush=True)
            del built
    return pd.concat(frames, ignore_index=True)
