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
from bench.run.environment import environment, node_kind, this_node
from bench.run.executor import Executor, LocalExecutor
from bench.run.guard import guarded
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.runner import (
    BuiltMethod,
    build_fitted,
    check_methods,
    check_one_node_kind,
    fit_method,
    json_safe,
    method_label,
    needs_training,
    node_kinds_of,
    prepare_for_remote,
    private_inputs,
    reuse_part,
    sweep_method,
)
from bench.run.store import RunStore, now
from datasets.cache import stable_hash
from datasets.distractors import REAL_SOURCE
from datasets.folder_lock import folder_lock
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
              redo: tuple[str, ...] = (), executor: Executor | None = None, mix_nodes: bool = False) -> ScaleOutcome:
    """Run the scaling sweep into ``run_dir`` (resuming its finished parts) and combine its tables.

    ``executor`` (default: here) fits the configurations, then at each size builds and sweeps them
    (each configuration at a size is one job; on Ray, one task with its threads reserved). Parts
    measured on nodes of different kinds are refused unless ``mix_nodes``.
    """
    executor = executor or LocalExecutor()
    started = now()
    t0 = time.perf_counter()
    store = RunStore(run_dir)
    grids = {n: resolve_grid(n, config.run.grids.get(n)) for n in config.methods}
    check_methods(config.methods, grids, config.run)
    with folder_lock(store.root, "run folder"):
        return _run_scale(config, store, grids, started, t0, progress, force, redo, executor, mix_nodes)


def _run_scale(config: ScaleConfig, store: RunStore, grids: dict, started: str, t0: float, progress: bool,
               force: bool, redo: tuple[str, ...], executor: Executor, mix_nodes: bool) -> ScaleOutcome:
    store.check_identity({"config": config.to_dict()}, force)  # refuse another run's folder before the work
    inputs = prepare_inputs(config.run, progress, executor)
    stages = dict(inputs.stage_seconds)
    t1 = time.perf_counter()
    db = build_scale_db(config, inputs, progress, executor)
    stages["distractors_and_store"] = time.perf_counter() - t1
    sizes = config.resolve_sizes(db.n_base, len(db))
    identity = {"config": config.to_dict(), "encoder_sha256": inputs.encoder.sha256,
                "queryset_content_hash": inputs.queryset.content_hash, "store_key": db.store.state["key"]}
    store.check_identity(identity, force)
    unknown = sorted(set(redo) - set(config.methods))
    if unknown:
        raise ValueError(f"--redo {' '.join(unknown)}: not among the methods of this run ({', '.join(config.methods)})")
    if any(needs_training(n) for n in config.methods):
        t1 = time.perf_counter()
        inputs.train  # noqa: B018 - embedded once, on all cores, shared by every size
        stages["train_pairs"] = time.perf_counter() - t1
    info = {**_info(config, inputs, db, sizes, identity, started), "engine": executor.describe()}
    store.write_run_json(info)
    configurations = [(name, bp, method_label(name, bp), method_code_hash(name), grids[name]["query"])
                      for name in config.methods for bp in grids[name]["build"]]
    labels = [part_label(n, label) for _, _, label, _, _ in configurations for n in sizes]
    t1 = time.perf_counter()
    _sweep_sizes(store, config, configurations, inputs, db, sizes, redo, progress, executor)
    stages["methods"] = time.perf_counter() - t1
    kinds = node_kinds_of(store, labels)
    check_one_node_kind(kinds, mix_nodes)
    results, points = store.combine(labels)
    stages["total"] = time.perf_counter() - t0
    info.update({"finished": now(), "stage_seconds": stages, "labels": labels, "node_kinds": sorted(kinds),
                 "peak_rss_bytes": _peak_rss_bytes()})
    store.write_run_json(info)
    return ScaleOutcome(store.root, points, results, info)


def _fit_job(inputs: RunInputs, name: str, build_params: dict) -> BuiltMethod:
    with threadpool_limits(limits=inputs.config.timing.threads):
        return fit_method(name, build_params, inputs)


def _size_job(inputs: RunInputs, db: ScaleDatabase, fitted: BuiltMethod, n: int, query_grid: list[dict],
              accuracy_threads: int, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Build a fresh copy of ``fitted`` over the first ``n`` rows and sweep it; returns (results,
    points, outcomes, meta), the DB facts, node and peak memory on every row."""
    sized = sized_inputs(private_inputs(inputs), db, n)  # the query matrix in this process's memory on Ray
    with threadpool_limits(limits=inputs.config.timing.threads), PeakMemory() as mem:
        # a fresh copy each size: the fitted configuration itself stays unbuilt
        method = copy.deepcopy(fitted.method)
        with guarded(fitted.label, "warm-up", inputs.config.call_limit_s):
            method.warm_up()  # compiled already where it was fitted; in another process, compiled here before timing
        built = build_fitted(replace(fitted, method=method), sized)
        results, points, outcomes = sweep_method(built, sized, query_grid, progress, accuracy_threads=accuracy_threads)
    stats = built.stats
    node = this_node()
    extra = {**db.facts(n), "peak_memory_bytes": mem.peak_bytes, "status": STATUS_OK, "status_detail": "",
             "node": node["host"], "node_kind": node_kind(node)}
    meta = {"fit_s": built.fit_s, "build_s": built.build_s, "jit_s": built.jit_s,
            "stats": {k: v for k, v in stats.items() if k != "bucket_counts"}, "status": STATUS_OK,
            "peak_memory_bytes": mem.peak_bytes, "memory_source": mem.source, "node": node}
    return results.assign(**extra), points.assign(**extra), outcomes.assign(n_db=n), json_safe(meta)


def _sweep_sizes(store: RunStore, config: ScaleConfig, configurations: list[tuple], inputs: RunInputs,
                 db: ScaleDatabase, sizes: list[int], redo: tuple[str, ...], progress: bool,
                 executor: Executor) -> None:
    """Every configuration at every size not finished yet: each fitted once (the train pairs do not
    depend on N), then size by size (ascending, so that a build's time predicts the next one's)
    built afresh and swept."""
    todo = {label: [n for n in sizes if not reuse_part(store, name, part_label(n, label), grid, code, redo)]
            for name, _, label, code, grid in configurations}
    fitting = [c for c in configurations if todo[c[2]]]
    if executor.remote and fitting:
        prepare_for_remote(inputs, [c[0] for c in fitting])
    threads = config.run.timing.threads
    fitted = {fitting[i][2]: f for i, f in executor.map(_fit_job, [(c[0], c[1]) for c in fitting], shared=(inputs,),
                                                        num_cpus=threads)}
    for n in sizes:
        jobs, waiting = [], []
        for name, build_params, label, code, grid in fitting:
            if n not in todo[label]:
                continue
            part = part_label(n, label)
            prev = _previous_build_s(store, sizes, n, label)
            predicted = prev[1] * n / prev[0] if prev else 0.0
            if predicted > config.build_budget_s:
                why = (f"build at N={prev[0]} took {prev[1]:.0f} s; at N={n} about {predicted:.0f} s is predicted, "
                       f"over the {config.build_budget_s:.0f} s budget")
                print(f"{part}: {why}; recorded as not run")
                frame = _skipped_part(name, label, build_params, n, db.facts(n), why, predicted)
                store.save_part(part, frame.iloc[:0], frame, pd.DataFrame(),
                                {"status": STATUS_OVER_BUDGET, "code": code, "query_grid": grid, "detail": why})
                continue
            jobs.append((fitted[label], n, grid, config.accuracy_threads, progress and not executor.remote))
            waiting.append((part, code, grid))
        for number, (results, points, outcomes, meta) in executor.map(_size_job, jobs, shared=(inputs, db),
                                                                      num_cpus=threads):
            part, code, grid = waiting[number]
            store.save_part(part, results, points, outcomes, {**meta, "code": code, "query_grid": grid})


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

