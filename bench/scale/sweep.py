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
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.memory import PeakMemory
from bench.measure.operating_points import FOCUS, REFERENCE
from bench.run.environment import environment, node_kind, this_node
from bench.run.executor import Executor, LocalExecutor
from bench.run.guard import guarded
from bench.run.inputs import RunInputs, prepare_inputs
from bench.run.remote import check_one_node_kind, node_kinds_of, prepare_for_remote, private_inputs
from bench.run.retime import (
    BESIDE,
    RETIMED_PART,
    finished_retime,
    merge_retimed,
    retime,
    retime_groups,
    save_retime,
    select_compared,
)
from bench.run.runner import (
    BuiltMethod,
    build_fitted,
    check_methods,
    fit_method,
    json_safe,
    method_label,
    reuse_part,
    sweep_method,
    timed_query_rows,
)
from bench.run.store import OUTCOMES, POINTS, RESULTS, RunStore, now
from datasets.cache import atomic_write_parquet, stable_hash
from datasets.distractors import REAL_SOURCES
from datasets.folder_lock import folder_lock
from methods.registry import learns, method_code_hash, resolve_grid

from .config import ScaleConfig
from .database import ScaleDatabase, build_scale_db, sized_inputs

STATUS_OK = "ok"
STATUS_OVER_BUDGET = "not run: build over budget"
STATUS_NOT_VALIDATED = "not run: fingerprint model not validated for this method"
# the config's fields that gate what is combined, not what a part measures: a folder's parts stay
# valid when they change (the validation is read again, and applied, on every run)
GATES = ("config.model_validation",)
# what a folder may gain or lose: methods and their grids (each part measures one configuration of one
# method; the combined tables hold the config's methods; a method's grid may not change)
MEMBERS = ("config.methods", "config.run.grids")


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


def _skip(store: RunStore, part: str, name: str, label: str, build_params: dict, facts: dict, why: str,
          predicted_s: float, status: str, code: str, grid: list) -> None:
    """Record a configuration at one size as not run (``status``, ``why``), a part like any other."""
    print(f"{part}: {why}; recorded as not run")
    frame = pd.DataFrame([{"method": name, "label": label, "build_params": json.dumps(build_params, sort_keys=True),
                           "query_params": "", "status": status, "status_detail": why,
                           "predicted_build_s": predicted_s, **facts}])
    store.save_part(part, frame.iloc[:0], frame, pd.DataFrame(),
                    {"status": status, "code": code, "query_grid": grid, "detail": why})


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
    # refuse another run's folder before the work
    store.check_identity({"config": config.to_dict()}, force, GATES, MEMBERS)
    inputs = prepare_inputs(config.run, progress, executor)
    stages = dict(inputs.stage_seconds)
    t1 = time.perf_counter()
    db = build_scale_db(config, inputs, progress, executor)
    stages["distractors_and_store"] = time.perf_counter() - t1
    sizes = config.resolve_sizes(db.n_base, len(db))
    identity = {"config": config.to_dict(), "encoder_sha256": inputs.encoder.sha256,
                "queryset_content_hash": inputs.queryset.content_hash, "store_key": db.store.state["key"]}
    store.check_identity(identity, force, GATES, MEMBERS)
    unknown = sorted(set(redo) - set(config.methods))
    if unknown:
        raise ValueError(f"--redo {' '.join(unknown)}: not among the methods of this run ({', '.join(config.methods)})")
    if any(learns(n) for n in config.methods):
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
    results, points = _apply_validation(store, config, db, points, results)
    interleave = config.run.timing.interleave
    gone = points[points["status"] == STATUS_NOT_VALIDATED]
    groups = {n: [part for part, _ in _retime_groups(store, configurations, n, interleave,
                                                     set(gone.loc[gone["n_db"] == n, "method"]))] for n in sizes}
    merge_retimed(store, [part for n in sizes for part in groups[n]], keys=("n_db",))
    stages["total"] = time.perf_counter() - t0
    retime_s = {str(n): _seconds_of(store, groups[n]) for n in sizes}
    info.update({"finished": now(), "stage_seconds": stages, "retime_seconds": retime_s, "labels": labels,
                 "node_kinds": sorted(kinds), "peak_rss_bytes": _peak_rss_bytes()})
    store.write_run_json(info)
    return ScaleOutcome(store.root, points, results, info)


def _verdicts(config: ScaleConfig, db: ScaleDatabase, missing: str) -> dict[str, bool] | None:
    """Each method's fingerprint-model verdict from ``config.model_validation``, when the DB holds
    model rows and the validation is there (None, with a warning ending in ``missing``, when it is
    not yet); an error where it validated another fingerprint model than the DB's."""
    if not config.model_validation or db.model is None:
        return None
    from .model_validation import read_validation, verdicts_for_model

    try:
        table = read_validation(config.model_validation)
    except FileNotFoundError as exc:
        warnings.warn(f"{exc}; {missing}", stacklevel=3)
        return None
    return verdicts_for_model(table, db.model["key"], config.model_validation)


def _left_out(verdicts: dict[str, bool] | None, synthetic_segments: int, name: str) -> bool:
    """Whether the model validation (``verdicts``, None without one) leaves the method ``name`` out
    at a size whose DB holds ``synthetic_segments`` model rows: any, where the method did not match."""
    return synthetic_segments > 0 and verdicts is not None and not verdicts.get(name, False)


def _not_validated(config: ScaleConfig, verdicts: dict[str, bool], method: str) -> str:
    """Why ``method`` is not run, or left out, where the DB holds model rows."""
    return (f"its numbers on model rows did not match those on real distractors in {config.model_validation}"
            if method in verdicts else f"not compared in {config.model_validation}")


def _apply_validation(store: RunStore, config: ScaleConfig, db: ScaleDatabase, points: pd.DataFrame,
                      results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave out of the combined tables every method's numbers at sizes holding model rows where
    the validation did not find the method matching: its points marked not run (the parts stay)."""
    verdicts = _verdicts(config, db, "the tables hold every method at the sizes holding model rows")
    if verdicts is None:
        return results, points
    out = pd.Series([_left_out(verdicts, s, m) for s, m in
                     zip(points["synthetic_distractor_segments"].fillna(0), points["method"])], index=points.index,
                    dtype=bool)
    if not out.any():
        return results, points
    keep = ["method", "label", "build_params", "n_db", "corpus_segments", "distractor_segments",
            "real_distractor_segments", "synthetic_distractor_segments", "tracks"]
    gone_rows = points.loc[out, [c for c in keep if c in points.columns]].drop_duplicates(["label", "n_db"])
    gone_rows = gone_rows.assign(query_params="", status=STATUS_NOT_VALIDATED,
                                 status_detail=gone_rows["method"].map(lambda m: _not_validated(config, verdicts, m)))
    gone = set(zip(gone_rows["label"], gone_rows["n_db"]))
    points = pd.concat([points[~out], gone_rows], ignore_index=True)
    results = results[[(lb, n) not in gone for lb, n in zip(results["label"], results["n_db"])]]
    outcomes = pd.read_parquet(store.root / OUTCOMES)
    outcomes = outcomes[[(lb, n) not in gone for lb, n in zip(outcomes["label"], outcomes["n_db"])]]
    for name, frame in ((POINTS, points), (RESULTS, results), (OUTCOMES, outcomes)):
        atomic_write_parquet(store.root / name, frame.reset_index(drop=True))
    print(f"model validation: {len(gone)} configuration(s) x size(s) left out of the tables, as not matching in "
          f"{config.model_validation}")
    return results, points


def _fit_job(inputs: RunInputs, name: str, build_params: dict) -> BuiltMethod:
    with threadpool_limits(limits=inputs.config.timing.threads):
        return fit_method(name, build_params, inputs)


def _size_job(inputs: RunInputs, db: ScaleDatabase, fitted: BuiltMethod, n: int, query_grid: list[dict],
              accuracy_threads: int, progress: bool, keep: bool = False,
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, BuiltMethod | None]:
    """Build a fresh copy of ``fitted`` over the first ``n`` rows and sweep it; returns (results,
    points, outcomes, meta, the built method when ``keep`` else None), the DB facts, node and peak
    memory on every row."""
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
    return (results.assign(**extra), points.assign(**extra), outcomes.assign(n_db=n), json_safe(meta),
            built if keep else None)


def built_at(sized: RunInputs, fitted: BuiltMethod) -> BuiltMethod:
    """A fresh copy of ``fitted`` built over ``sized``'s DB, warmed up."""
    with threadpool_limits(limits=sized.config.timing.threads):
        method = copy.deepcopy(fitted.method)
        with guarded(fitted.label, "warm-up", sized.config.call_limit_s):
            method.warm_up()
        return build_fitted(replace(fitted, method=method), sized)


def _retime_job(inputs: RunInputs, db: ScaleDatabase, n: int, selection: pd.DataFrame,
                fitted: dict[str, BuiltMethod], kept: dict[str, BuiltMethod]) -> pd.DataFrame:
    """Re-time the ``selection`` (a group of ``bench.run.retime.retime_groups``) at size ``n``, each
    configuration built (or taken from ``kept``, built at ``n`` by the sweep) once for all its points."""
    sized = sized_inputs(private_inputs(inputs), db, n)
    built = {label: kept.get(label) or built_at(sized, fitted[label])
             for label in dict.fromkeys(selection["label"])}
    entries = [(r["label"], r["query_params"], built[r["label"]].method) for r in selection.to_dict("records")]
    return retime(entries, sized, timed_query_rows, list(selection[BESIDE])).assign(n_db=n)


def retime_part(n: int) -> str:
    """The part name of the re-timing at size ``n``."""
    return part_label(n, RETIMED_PART)


def _sweep_sizes(store: RunStore, config: ScaleConfig, configurations: list[tuple], inputs: RunInputs,
                 db: ScaleDatabase, sizes: list[int], redo: tuple[str, ...], progress: bool,
                 executor: Executor) -> None:
    """Every configuration at every size not finished yet: each fitted once (the train pairs do not
    depend on N), then size by size (ascending, so that a build's time predicts the next one's)
    built afresh and swept."""
    todo: dict[str, list[int]] = {}
    for name, _, label, code, grid in configurations:
        todo[label] = []
        for n in sizes:
            reused, why = reuse_part(store, name, part_label(n, label), grid, code, redo)
            if reused and (store.part_meta(part_label(n, label))[0] or {}).get("status") == STATUS_NOT_VALIDATED:
                reused, why = False, "left out as not validated by an earlier run: the validation is read again"
            if why:
                print(f"{part_label(n, label)}: {why}")
            if not reused:
                todo[label].append(n)
    fitting = [c for c in configurations if todo[c[2]]]
    if executor.remote and fitting:
        prepare_for_remote(inputs, [c[0] for c in fitting])
    threads = config.run.timing.threads
    fitted = {fitting[i][2]: f for i, f in executor.map(_fit_job, [(c[0], c[1]) for c in fitting], shared=(inputs,),
                                                        num_cpus=threads)}
    keep = not executor.remote  # the sweep's built methods stay here for the re-timing, where it runs
    pairs = config.run.timing.interleave == "pairs"  # then only the focus method's: each other one has its turn
    verdicts = _verdicts(config, db, "every method runs on model rows; the validation is applied when the run's "
                                     "tables are combined, if it is there by then")
    repeats = config.run.timing.interleaved_repeats
    for n in sizes:
        jobs, waiting = [], []
        for name, build_params, label, code, grid in fitting:
            if n not in todo[label]:
                continue
            part = part_label(n, label)
            prev = _previous_build_s(store, sizes, n, label)
            predicted = prev[1] * n / prev[0] if prev else 0.0
            facts = db.facts(n)
            if _left_out(verdicts, facts["synthetic_distractor_segments"], name):
                _skip(store, part, name, label, build_params, facts, _not_validated(config, verdicts, name), predicted,
                      STATUS_NOT_VALIDATED, code, grid)
                continue
            if predicted > config.build_budget_s:
                why = (f"build at N={prev[0]} took {prev[1]:.0f} s; at N={n} about {predicted:.0f} s is predicted, "
                       f"over the {config.build_budget_s:.0f} s budget")
                _skip(store, part, name, label, build_params, facts, why, predicted, STATUS_OVER_BUDGET, code, grid)
                continue
            jobs.append((fitted[label], n, grid, config.accuracy_threads, progress and not executor.remote,
                         keep and (name == FOCUS or not pairs)))
            waiting.append((part, code, grid, name))
        kept: dict[str, BuiltMethod] = {}
        done_by_method: dict[str, int] = {}
        for number, (results, points, outcomes, meta, built) in executor.map(_size_job, jobs, shared=(inputs, db),
                                                                            num_cpus=threads):
            part, code, grid, name = waiting[number]
            store.save_part(part, results, points, outcomes, {**meta, "code": code, "query_grid": grid})
            if built is not None:
                kept[built.label] = built
                done_by_method[name] = done_by_method.get(name, 0) + 1
                if done_by_method[name] == sum(w[3] == name for w in waiting):
                    _keep_compared(store, configurations, n, kept)  # this method's other configurations can go
        synthetic = db.facts(n)["synthetic_distractor_segments"]
        left_out = {name for name in config.methods if _left_out(verdicts, synthetic, name)}
        _retime_size(store, configurations, n, fitted, kept, inputs, db, executor, repeats, threads, left_out)
        kept.clear()


def _size_points(store: RunStore, configurations: list[tuple], n: int) -> pd.DataFrame:
    """The finished points of every configuration at size ``n`` (from the run folder's parts)."""
    frames = []
    for _, _, label, _, _ in configurations:
        meta, damaged = store.part_meta(part_label(n, label))
        if meta is not None and not damaged and meta.get("status") == STATUS_OK:
            frames.append(store.part_table(part_label(n, label), "points"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _keep_compared(store: RunStore, configurations: list[tuple], n: int, kept: dict[str, BuiltMethod]) -> None:
    """Drop the kept built methods whose points are not compared at ``n`` (by the points so far:
    once exact search and every configuration of a method are done, its selection is final)."""
    points = _size_points(store, configurations, n)
    if points.empty or REFERENCE not in set(points["method"]):
        return
    chosen = set(select_compared(points)["label"])
    names = {label: name for name, _, label, _, _ in configurations}
    finished = set(points["method"])
    for label in [lab for lab in kept if names[lab] in finished and lab not in chosen]:
        del kept[label]


def _retime_groups(store: RunStore, configurations: list[tuple], n: int, interleave: str,
                   left_out: set[str]) -> list[tuple[str, pd.DataFrame]]:
    """The re-timing groups at size ``n`` (``bench.run.retime.retime_groups``) by the points so far,
    without the methods in ``left_out`` (those the model validation leaves out at ``n``)."""
    points = _size_points(store, configurations, n)
    points = points[~points["method"].isin(left_out)] if not points.empty else points
    selection = select_compared(points) if not points.empty else points
    return retime_groups(selection, interleave, retime_part(n)) if not selection.empty else []


def _seconds_of(store: RunStore, parts: list[str]) -> float | None:
    """The re-timing's seconds over ``parts`` (None where none recorded them)."""
    seconds = [(store.part_meta(part)[0] or {}).get("seconds") for part in parts]
    return sum(s for s in seconds if s is not None) if any(s is not None for s in seconds) else None


def _retime_size(store: RunStore, configurations: list[tuple], n: int, fitted: dict[str, BuiltMethod],
                 kept: dict[str, BuiltMethod], inputs: RunInputs, db: ScaleDatabase, executor: Executor,
                 repeats: int, threads: int, left_out: set[str]) -> None:
    """Re-time the compared points at size ``n`` interleaved, group by group
    (``timing.interleave``), unless a standing part holds the group; the methods in ``left_out``
    (not validated on the model rows ``n`` holds) are not timed."""
    groups = _retime_groups(store, configurations, n, inputs.config.timing.interleave, left_out)
    todo = [(part, group) for part, group in groups if not finished_retime(store, part, group, repeats)]
    if not todo:
        return
    labels = {label for _, group in todo for label in group["label"]}
    missing = [label for label in labels if label not in kept and fitted.get(label) is None]
    if missing:  # configurations reused from an earlier run at every size: fitted again for the re-timing
        by_label = {label: (name, bp) for name, bp, label, _, _ in configurations}
        for label in missing:
            name, bp = by_label[label]
            fitted[label] = _fit_job(inputs, name, bp)
    if not executor.remote:  # a configuration in several pairs (the focus's) is built once for all of them
        uses = pd.concat([group.drop_duplicates("label") for _, group in todo])["label"].value_counts()
        several = [label for label, count in uses.items() if count > 1 and label not in kept]
        if several:
            sized = sized_inputs(private_inputs(inputs), db, n)
            kept.update({label: built_at(sized, fitted[label]) for label in several})
    points = sum(len(group) for _, group in todo)
    print(f"N={n}: re-timing {points} compared points interleaved ({repeats} rounds"
          + (f", in {len(todo)} pairs beside {FOCUS})" if len(todo) > 1 or todo[0][0] != retime_part(n) else ")"))
    jobs = [(n, group, {k: fitted[k] for k in set(group["label"]) if k not in kept},
             {k: v for k, v in kept.items() if k in set(group["label"])}) for _, group in todo]
    t0 = time.perf_counter()
    for number, frame in executor.map(_retime_job, jobs, shared=(inputs, db), num_cpus=threads):
        part, group = todo[number]
        save_retime(store, part, frame, group, repeats, {"seconds": time.perf_counter() - t0, "node": this_node()})
        t0 = time.perf_counter()


def _peak_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _info(config: ScaleConfig, inputs: RunInputs, db: ScaleDatabase, sizes: list[int], identity: dict,
          started: str) -> dict:
    dist = db.distractors
    return {"kind": "scale", "run_id": stable_hash(identity, n=10), "started": started, "identity": identity,
            "config": config.to_dict(), "environment": environment(), "threads": config.run.timing.threads,
            "seed": config.run.seed, "protocol": inputs.corpus.protocol.to_dict(),
            "encoder": {"name": inputs.encoder.name, "sha256": inputs.encoder.sha256,
                        "identity": inputs.encoder.identity},
            "queryset": {"content_hash": inputs.queryset.content_hash, "queries": len(inputs.manifest),
                         "query_segments": len(inputs.query_index)},
            "sizes": sizes, "db": {"base_segments": db.n_base, "rows": len(db),
                                   "sizes": [db.facts(n) for n in sizes]},
            "distractors": {"tracks": len(dist.tracks), "segments": dist.segments,
                            "real_segments": dist.real_segments,
                            "sources": {k: v.name for k, v in dist.sources.items()},
                            "packages": sorted(item for name in REAL_SOURCES
                                               for item in getattr(dist.sources.get(name), "versions", {}).items()),
                            "dropped_sharing_audio": dist.dropped.to_dict("records"), "notes": dist.notes},
            "store": {"root": str(db.store.root), "key": db.store.state["key"]},
            **({"fingerprint_model": db.model} if db.model else {})}

