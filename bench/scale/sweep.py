"""The scaling run: every method configuration at every DB size, with the query set fixed.

For each size N (ascending) and each configuration: fit (once per configuration: learned methods
see the train pairs only, which do not depend on N), build over the first N rows of the store,
sweep the query parameters (accuracy over every query, latency over the timed subset on the run's
thread count, as ``bench run`` does), and record build time, peak memory (anonymous RSS above the
level before, ``bench.measure.memory``), index bytes and the DB's make-up. Each (size, configuration)
is a part of the run folder written when it finishes, so an interrupted run resumes where it
stopped. A configuration whose build at N is predicted (from its build at the previous size,
scaled linearly in N) to exceed ``build_budget_s`` is recorded as not run, with the prediction.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.memory import PeakMemory
from bench.run.environment import environment
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.runner import (
    BuiltMethod,
    build_fitted,
    fit_method,
    json_safe,
    method_label,
    needs_training,
    reuse_part,
    sweep_method,
)
from bench.run.store import RunStore, now
from datasets.cache import stable_hash
from datasets.distractors import REAL_SOURCE
from methods.registry import method_code_hash, resolve_grid

from .config import ScaleConfig
from .database import ScaleDatabase, build_scale_db, sized_inputs

STATUS_OK = "ok"
STATUS_OVER_BUDGET = "not run: build over budget"


@dataclass
class ScaleOutcome:
    """Where a scaling run landed and its combined tables."""

    root: Path
    points: pd.DataFrame
    results: pd.DataFrame
    info: dict


def part_label(n: int, label: str) -> str:
    """A part's name in the run folder: ``N=1000000 lsh(K=16,L=1)``."""
    return f"N={n} {label}"


def _skipped_part(name: str, label: str, build_params: dict, n: int, facts: dict, why: str,
                  predicted_s: float) -> pd.DataFrame:
    return pd.DataFrame([{"method": name, "label": label, "build_params": json.dumps(build_params, sort_keys=True),
                          "query_params": "", "status": STATUS_OVER_BUDGET, "status_detail": why,
                          "predicted_build_s": predicted_s, **facts}])


def _previous_build_s(store: RunStore, sizes: list[int], n: int, label: str) -> tuple[int, float] | None:
    """(size, build seconds) of this configuration at the largest finished size below ``n``."""
    for m in sorted([s for s in sizes if s < n], reverse=True):
        meta, _ = store.part_meta(part_label(m, label))
        if meta is not None and meta.get("status") == STATUS_OK:
            return m, float(meta["build_s"])
    return None


def run_scale(config: ScaleConfig, run_dir: Path | str, progress: bool = True, force: bool = False,
              redo: tuple[str, ...] = ()) -> ScaleOutcome:
    """Run the scaling sweep into ``run_dir`` (resuming its finished parts) and combine its tables."""
    started = now()
    t0 = time.perf_counter()
    store = RunStore(run_dir)
    store.check_identity({"config": config.to_dict()}, force)  # refuse another run's folder before the work
    inputs = prepare_inputs(config.run, progress)
    stages = dict(inputs.stage_seconds)
    t1 = time.perf_counter()
    db = build_scale_db(config, inputs, progress)
    stages["distractors_and_store"] = time.perf_counter() - t1
    sizes = config.resolve_sizes(db.n_base, len(db))
    identity = {"config": config.to_dict(), "encoder_sha256": inputs.encoder.sha256,
                "queryset_content_hash": inputs.queryset.content_hash, "store_key": db.store.state["key"]}
    store.check_identity(identity, force)
    grids = {n: resolve_grid(n, config.run.grids.get(n)) for n in config.methods}
    unknown = sorted(set(redo) - set(config.methods))
    if unknown:
        raise ValueError(f"--redo {' '.join(unknown)}: not among the methods of this run ({', '.join(config.methods)})")
    if any(needs_training(n) for n in config.methods):
        t1 = time.perf_counter()
        inputs.train  # noqa: B018 - embedded once, on all cores, shared by every size
        stages["train_pairs"] = time.perf_counter() - t1
    info = _info(config, inputs, db, sizes, identity, started)
    store.write_run_json(info)
    labels = [part_label(n, method_label(name, bp)) for name in config.methods for bp in grids[name]["build"]
              for n in sizes]
    t1 = time.perf_counter()
    for name in config.methods:
        code = method_code_hash(name)
        for build_params in grids[name]["build"]:
            _run_configuration(store, config, name, build_params, code, inputs, db, sizes, grids[name]["query"],
                               redo, progress)
    stages["methods"] = time.perf_counter() - t1
    results, points = store.combine(labels)
    stages["total"] = time.perf_counter() - t0
    info.update({"finished": now(), "stage_seconds": stages, "labels": labels,
                 "peak_rss_bytes": _peak_rss_bytes()})
    store.write_run_json(info)
    return ScaleOutcome(store.root, points, results, info)


def _run_configuration(store: RunStore, config: ScaleConfig, name: str, build_params: dict, code: str,
                       inputs: RunInputs, db: ScaleDatabase, sizes: list[int], query_grid: list[dict],
                       redo: tuple[str, ...], progress: bool) -> None:
    """One method configuration at every size: fitted once (on the train pairs, which do not depend
    on N), then built afresh and swept at each size not finished yet."""
    label = method_label(name, build_params)
    fitted: BuiltMethod | None = None
    for n in sizes:
        part = part_label(n, label)
        if reuse_part(store, name, part, query_grid, code, redo):
            continue
        facts = db.facts(n)
        prev = _previous_build_s(store, sizes, n, label)
        predicted = prev[1] * n / prev[0] if prev else 0.0
        if predicted > config.build_budget_s:
            why = (f"build at N={prev[0]} took {prev[1]:.0f} s; at N={n} about {predicted:.0f} s is predicted, "
                   f"over the {config.build_budget_s:.0f} s budget")
            print(f"{part}: {why}; recorded as not run")
            frame = _skipped_part(name, label, build_params, n, facts, why, predicted)
            store.save_part(part, frame.iloc[:0], frame, pd.DataFrame(),
                            {"status": STATUS_OVER_BUDGET, "code": code, "query_grid": query_grid, "detail": why})
            continue
        sized = sized_inputs(inputs, db, n)
        if fitted is None:
            with threadpool_limits(limits=config.run.timing.threads):
                fitted = fit_method(name, build_params, sized)
        with threadpool_limits(limits=config.run.timing.threads), PeakMemory() as mem:
            # a fresh copy each size: the fitted configuration itself stays unbuilt
            built = build_fitted(replace(fitted, method=copy.deepcopy(fitted.method)), sized)
            results, points, outcomes = sweep_method(built, sized, query_grid, progress,
                                                     accuracy_threads=config.accuracy_threads)
        stats = built.stats
        meta = {"fit_s": built.fit_s, "build_s": built.build_s, "jit_s": built.jit_s,
                "stats": {k: v for k, v in stats.items() if k != "bucket_counts"}}
        del built
        extra = {**facts, "peak_memory_bytes": mem.peak_bytes, "status": STATUS_OK, "status_detail": ""}
        store.save_part(part, results.assign(**extra), points.assign(**extra), outcomes.assign(n_db=n),
                        json_safe({**meta, "status": STATUS_OK, "code": code, "query_grid": query_grid,
                                   "peak_memory_bytes": mem.peak_bytes, "memory_source": mem.source}))


def _peak_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _info(config: ScaleConfig, inputs: RunInputs, db: ScaleDatabase, sizes: list[int], identity: dict,
          started: str) -> dict:
    dist = db.distractors
    return {"kind": "scale", "run_id": stable_hash(identity, n=10), "started": started, "identity": identity,
            "config": config.to_dict(), "environment": environment(), "threads": config.run.timing.threads,
            "seed": config.run.seed, "protocol": inputs.corpus.protocol.to_dict(),
            "encoder": {"name": inputs.encoder.name, "sha256": inputs.encoder.sha256},
            "queryset": {"content_hash": inputs.queryset.content_hash, "queries": len(inputs.manifest),
                         "query_segments": len(inputs.query_index)},
            "sizes": sizes, "db": {"base_segments": db.n_base, "rows": len(db),
                                   "sizes": [db.facts(n) for n in sizes]},
            "distractors": {"tracks": len(dist.tracks), "segments": dist.segments,
                            "real_segments": dist.real_segments,
                            "sources": {k: v.name for k, v in dist.sources.items()},
                            "packages": sorted(getattr(dist.sources.get(REAL_SOURCE), "versions", {}).items()),
                            "dropped_sharing_audio": dist.dropped.to_dict("records"), "notes": dist.notes},
            "store": {"root": str(db.store.root), "key": db.store.state["key"]}}

