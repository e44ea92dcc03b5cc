"""Run the benchmark: fit and build every method configuration, sweep its query parameters,
and record accuracy, work, latency (with its per-stage breakdown), throughput, build cost and
bucket balance; and the harness's own overhead per timed query."""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.measure.metrics import by_condition, end_to_end_seconds, overall, query_outcomes
from bench.measure.open_set import open_set_measures
from bench.measure.operating_points import REFERENCE
from bench.measure.overhead import harness_overhead
from bench.measure.recall import per_query, segment_recalls
from bench.measure.timing import latency_sample, time_batch, time_queries
from datasets.cache import stable_hash
from datasets.folder_lock import FolderBusyError, folder_lock
from datasets.progress import tqdm
from datasets.queries.open_set import present_mask
from methods.base import Method, SearchResult
from methods.common.balance import bucket_balance
from methods.registry import (
    get_method,
    learns,
    load_plugin,
    loaded_plugins,
    method_class,
    method_code_hash,
    method_names,
    resolve_grid,
)

from .config import RunConfig
from .environment import environment, node_kind, this_node
from .executor import Executor, LocalExecutor
from .fit_cache import cached_fit
from .guard import guarded, read_only, read_only_db, read_only_train
from .inputs import RunInputs, prepare_inputs
from .remote import check_one_node_kind, node_kinds_of, prepare_for_remote, private_inputs
from .result_checks import check_search_result, check_stage_times
from .retime import (
    BESIDE,
    RETIMED_PART,
    finished_retime,
    merge_retimed,
    retime,
    retime_groups,
    save_retime,
    select_compared,
)
from .store import OUTCOMES, PARTS, POINTS, RESULTS, RUN_JSON, RunStore, RunStoreError, now


def method_label(name: str, build_params: dict) -> str:
    """A method configuration's name in results: ``lsh(K=16,L=4)``."""
    inner = ",".join(f"{k}={v}" for k, v in build_params.items())
    return f"{name}({inner})" if inner else name


def resolve_methods(requested: list[str]) -> list[str]:
    """Expand 'all', check names (listing the choices), and put the exhaustive reference first."""
    names = method_names() if "all" in requested else list(dict.fromkeys(requested))
    for name in names:
        method_class(name)
    return [REFERENCE] + [n for n in names if n != REFERENCE]


def run_id(config: RunConfig, inputs: RunInputs) -> str:
    """Run folder name: corpus plus a hash of the config, encoder and query set."""
    key = stable_hash([config.to_dict(), inputs.encoder.sha256, inputs.queryset.content_hash], n=10)
    return f"{config.corpus}-{key}"


@dataclass
class RunOutcome:
    """Where a run landed and its tables."""

    root: Path
    results: pd.DataFrame
    points: pd.DataFrame
    info: dict


def _balance(stats: dict) -> dict[str, float]:
    if "bucket_counts" not in stats:
        return {}
    b = bucket_balance(np.asarray(stats["bucket_counts"]), int(stats["n_buckets_total"]))
    return {f"balance_{k}": v for k, v in b.items()}


def _occupancy(stats: dict) -> list[int] | None:
    """How many buckets hold c items, c = 0..max, empty buckets included (None without buckets)."""
    if "bucket_counts" not in stats:
        return None
    counts = np.asarray(stats["bucket_counts"], dtype=np.int64)
    hist = np.bincount(counts, minlength=1)
    hist[0] += int(stats["n_buckets_total"]) - counts.size  # hash tables list non-empty buckets only
    return hist.tolist()


@dataclass
class BuiltMethod:
    """A fitted and built method configuration, ready to search."""

    method: Method
    name: str
    label: str
    build_params: dict
    fit_s: float
    build_s: float
    stats: dict
    jit_s: float = 0.0  # compiling the search kernels (Method.warm_up), apart from fit and build


def make_method(name: str, build_params: dict, config: RunConfig) -> Method:
    """One method configuration constructed with the run's seed, threads and device (nothing
    learned or built); a failure is a MethodError naming it."""
    with guarded(method_label(name, build_params), "construct", config.call_limit_s):
        return get_method(name, seed=config.seed, threads=config.timing.threads, device=config.device,
                          **build_params)


def check_methods(names: list[str], grids: dict, config: RunConfig) -> None:
    """Construct every method configuration of the run once, before any data is built, so that a
    configuration the method refuses (a parameter, the seed, the device) fails in seconds."""
    for name in names:
        kind = method_class(name).input_kind
        if config.distractors and kind != "embedding":
            raise ValueError(f"distractors={config.distractors}: method {name} searches {kind}, and distractors are "
                             f"embedded only; run it without distractors, or leave it out")
        for build_params in grids[name]["build"]:
            make_method(name, build_params, config)


def fit_method(name: str, build_params: dict, inputs: RunInputs) -> BuiltMethod:
    """Make one method configuration, fit it (learned methods see only the train pairs, read-only)
    and compile its search kernels; not yet built (``build_s`` 0, no stats). Call it under the
    run's thread limits. Each call is guarded (``bench.run.guard``)."""
    cfg = inputs.config
    label = method_label(name, build_params)
    method = make_method(name, build_params, cfg)
    fit_s = 0.0
    if learns(name):
        train = read_only_train(inputs.train)
        with guarded(label, "fit", cfg.call_limit_s):
            method, fit_s, _ = cached_fit(method, name, build_params, train)  # bench/run/fit_cache.py
    with guarded(label, "warm-up", cfg.call_limit_s):
        t0 = time.perf_counter()
        method.warm_up()
        jit_s = time.perf_counter() - t0
    return BuiltMethod(method, name, label, build_params, fit_s, 0.0, {}, jit_s)


def build_fitted(fitted: BuiltMethod, inputs: RunInputs) -> BuiltMethod:
    """``fitted`` built over the DB matrix of its method's ``input_kind`` (embeddings, or spectral
    images; read-only), with its build time and stats."""
    db, _ = inputs.matrices(fitted.method.input_kind)
    db = read_only_db(db)
    with guarded(fitted.label, "build", inputs.config.call_limit_s):
        t0 = time.perf_counter()
        fitted.method.build(db)
        build_s = time.perf_counter() - t0
        stats = fitted.method.stats()
    return replace(fitted, build_s=build_s, stats=stats)


def build_method(name: str, build_params: dict, inputs: RunInputs) -> BuiltMethod:
    """Fit (learned methods see only the train pairs) and build one method configuration over the DB.

    The DB matrix is the one of the method's ``input_kind`` (embeddings, or spectral images).
    Call it under the run's thread limits (``threadpool_limits``), as ``evaluate_method`` does.
    """
    return build_fitted(fit_method(name, build_params, inputs), inputs)


def json_safe(obj: object) -> object:
    """``obj`` as JSON holds it: arrays become lists, anything else unknown its ``str``."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def timed_query_rows(inputs: RunInputs) -> tuple[np.ndarray, list[np.ndarray]]:
    """The query numbers whose latency is measured (among the present queries: an open set's absent
    and calibration queries are only scored), and the query-segment rows of each."""
    cfg = inputs.config
    rows_of = inputs.query_index.groupby("query").indices
    present = np.flatnonzero(present_mask(inputs.manifest))
    timed = present[latency_sample(len(present), cfg.timing.latency_queries, cfg.seed)]
    return timed, [rows_of[q] for q in timed]


#: Query segments per call of the untimed accuracy pass: bounds the candidate lists a method holds at
#: once (a hash method's candidates of 40,000 segments at a million rows would not fit in memory).
ACCURACY_CHUNK = 1024


def accuracy_chunks(groups: np.ndarray | None, n: int, size: int | None = None) -> list[slice]:
    """Row slices of about ``size`` rows (``ACCURACY_CHUNK``) covering ``n`` rows in order; with
    ``groups`` (one label per row, each group's rows adjacent), a slice ends only where the label
    changes, so no group is split."""
    size = size or ACCURACY_CHUNK
    if groups is None:
        return [slice(s, min(s + size, n)) for s in range(0, n, size)]
    changes = np.flatnonzero(np.asarray(groups)[1:] != np.asarray(groups)[:-1]) + 1
    out, start = [], 0
    while start < n:
        later = changes[changes >= start + size]
        end = int(later[0]) if later.size else n
        out.append(slice(start, end))
        start = end
    return out


def accuracy_search(method: Method, queries: np.ndarray, k: int, threads: int | None) -> SearchResult:
    """The untimed search over every query segment, ``ACCURACY_CHUNK`` segments a call, on
    ``threads`` threads (the method's own when None); the method's thread count is restored before
    anything is timed. A method that searches a batch on one thread (``Method.threads_over_batch``
    False) is called from ``threads`` threads at once, each on its own chunks, and the answers are
    joined in order."""
    own = method.threads
    threads = own if threads is None else threads
    parallel = not method.threads_over_batch and threads > 1
    # an audio method rejoins each query's rows into its audio: a chunk never splits a query
    chunks = accuracy_chunks(queries[:, 0] if method.input_kind == "audio" else None, len(queries))

    def search(rows: slice) -> SearchResult:
        return method.search(np.ascontiguousarray(queries[rows]), k)

    method.threads = 1 if parallel else threads
    try:
        with threadpool_limits(limits=method.threads):
            if parallel:
                with ThreadPoolExecutor(threads) as pool:
                    parts = list(pool.map(search, chunks))
            else:
                parts = [search(rows) for rows in chunks]
    finally:
        method.threads = own
    if len(parts) == 1:
        return parts[0]
    return SearchResult(np.concatenate([p.ids for p in parts]), np.concatenate([p.scores for p in parts]),
                        np.concatenate([p.candidates for p in parts]))


def sweep_method(built: BuiltMethod, inputs: RunInputs, query_grid: list[dict], progress: bool,
                 timed: bool = True, accuracy_threads: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                     pd.DataFrame]:
    """Search every query at each point of the query sweep; returns (results, points, outcomes).

    With ``timed=False`` latency and QPS are left out (NaN): only the deterministic measures.
    Searches and timings use the query matrix of the method's ``input_kind``. The accuracy pass
    runs on ``accuracy_threads`` (default: the run's timing threads); latency and QPS always on
    the run's timing threads.
    """
    cfg = inputs.config
    method = built.method
    _, queries = inputs.matrices(method.input_kind)
    queries = read_only(queries)
    limit = cfg.call_limit_s
    codes, tracks = inputs.db_track_codes
    db_segment = inputs.db_segments["segment"].to_numpy()
    timed_queries, timed_rows = timed_query_rows(inputs)
    frontend_ms = inputs.frontend_ms_per_segment(method.input_kind) if timed else 0.0
    static = {"method": built.name, "label": built.label,
              "build_params": json.dumps(built.build_params, sort_keys=True),
              "fit_s": built.fit_s, "build_s": built.build_s, "jit_s": built.jit_s,
              "index_bytes": int(built.stats.get("index_bytes", 0)),
              "threads": cfg.timing.threads, "k": cfg.k, "n_db": len(inputs.db), **_balance(built.stats)}
    results, points, outcomes = [], [], []
    for i, qp in enumerate(tqdm(query_grid, desc=built.label, disable=not progress)):
        t_accuracy = time.perf_counter()
        with guarded(built.label, "search", limit, qp, f"all {len(queries)} query segments in one call"):
            method.set_query_params(**qp)
            res = accuracy_search(method, queries, cfg.k, accuracy_threads)
        accuracy_s = time.perf_counter() - t_accuracy
        check_search_result(res, built.label, qp, len(queries), cfg.k, len(inputs.db))
        scored = query_outcomes(res, inputs.query_index, inputs.manifest, codes, tracks, db_segment,
                                inputs.corpus.protocol.hop_s)
        if method.input_kind == "embedding":  # recall against exact search over the same embeddings
            recalls = segment_recalls(inputs.db, queries, res.ids, inputs.exact_scores)
            for col, values in per_query(recalls, inputs.query_index["query"].to_numpy(), len(scored)).items():
                scored[col] = values.to_numpy()
        if not method.counts_candidates:
            scored["candidates"] = np.nan  # the library does not say what it scored
        present = present_mask(scored)
        out = scored[present].copy()  # hit rates count the queries whose song is in the DB
        stages: dict[str, float] = {}
        t_timing = time.perf_counter()
        if timed:
            with guarded(built.label, "timed search", limit, qp):
                timing = time_queries(method, queries, timed_rows, cfg.k, cfg.timing.warmup, cfg.timing.repeats)
                qps = (len(inputs.manifest) / time_batch(method, queries, cfg.k, cfg.timing.batch_repeats)
                       if cfg.timing.batch_repeats else float("nan"))
            lat = pd.Series(timing.seconds, index=timed_queries)
            e2e = end_to_end_seconds(lat, out, frontend_ms)
            out["latency_ms"] = lat.reindex(out.index) * 1e3  # NaN for the queries not timed
            for r, rep in enumerate(timing.repeats):
                out[f"latency_rep{r}_ms"] = pd.Series(rep * 1e3, index=timed_queries).reindex(out.index)
            coverage = check_stage_times(timing.stage_seconds, timing.call_seconds, built.label, qp)
            stages = {**{f"stage_{s}_ms": v * 1e3 for s, v in timing.stage_seconds.items()},
                      "stage_call_ms": timing.call_seconds * 1e3, "stage_coverage": coverage}
        else:
            lat, qps = pd.Series([], dtype=float), float("nan")
            e2e = lat
        point = {**static, "query_params": json.dumps(qp, sort_keys=True), "param_index": i, "qps": qps,
                 "accuracy_s": accuracy_s, "timing_s": time.perf_counter() - t_timing}
        results.append(by_condition(out, lat, len(inputs.db), e2e).assign(**point))
        points.append({**point, **overall(out, lat, len(inputs.db), e2e, cfg.seed), **stages,
                       **open_set_measures(scored)})
        others = scored[~present]  # an open set's absent and calibration queries, scored only
        outcomes.append(pd.concat([out, others]).assign(label=built.label, query_params=point["query_params"]))
    return pd.concat(results, ignore_index=True), pd.DataFrame(points), pd.concat(outcomes, ignore_index=True)


def evaluate_method(name: str, build_params: dict, inputs: RunInputs, query_grid: list[dict],
                    progress: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Fit, build and sweep one method configuration; returns (results, points, outcomes, meta).

    NumPy's BLAS pool is held to the run's thread count too, as torch's and faiss's are; the
    train pairs are embedded, and the method's input matrices computed, before that, on all cores.
    """
    kind = method_class(name).input_kind
    if learns(name):
        inputs.train  # noqa: B018 - embeds (and caches) the train pairs outside the thread limit
    inputs.matrices(kind)  # spectral images are computed (and cached) on first use, outside the limit
    input_facts = inputs.input_facts(kind)
    with threadpool_limits(limits=inputs.config.timing.threads):
        built = build_method(name, build_params, inputs)
        results, points, outcomes = sweep_method(built, inputs, query_grid, progress)
    stats = built.stats
    node = this_node()
    where = {"node": node["host"], "node_kind": node_kind(node)}
    meta = {"fit_s": built.fit_s, "build_s": built.build_s, "jit_s": built.jit_s, "input": input_facts,
            "stats": {k: v for k, v in stats.items() if k != "bucket_counts"}, "occupancy": _occupancy(stats),
            "node": node}
    return results.assign(**where), points.assign(**where), outcomes, json_safe(meta)


def _evaluate_job(inputs: RunInputs, plugins: list[Path], name: str, build_params: dict, query_grid: list[dict],
                  progress: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    for path in plugins:  # a worker process registers the driver's plugin methods (loading is idempotent)
        load_plugin(path)
    return evaluate_method(name, build_params, private_inputs(inputs), query_grid, progress)


def run_benchmark(config: RunConfig, requested: list[str], out: Path | str = "reports",
                  run_dir: Path | str | None = None, progress: bool = True, force: bool = False,
                  redo: tuple[str, ...] = (), executor: Executor | None = None,
                  mix_nodes: bool = False, say: Callable[[str], None] = print) -> RunOutcome:
    """Run the requested methods (and the exhaustive reference) and write the run folder.

    ``say`` is told, per configuration, why a finished part is reused or run again.

    ``executor`` evaluates the method configurations (default: here, one after another; see
    ``bench.distributed.executor.RayExecutor``). Parts measured on nodes of different kinds are
    refused unless ``mix_nodes``.

    A run folder belongs to one configuration (run config, encoder, query set): one made for
    another is refused, naming the differing fields, unless ``force`` (which discards its results).
    Finished method configurations are reused unless their method is in ``redo`` or their code or
    query sweep changed since; a folder left empty by a failure is removed.
    """
    names = resolve_methods(requested)
    unknown = sorted(set(redo) - set(names))
    if unknown:
        raise ValueError(f"--redo {' '.join(unknown)}: not among the methods of this run ({', '.join(names)})")
    grids = {n: resolve_grid(n, config.grids.get(n)) for n in names}
    check_methods(names, grids, config)
    started = now()
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise RunStoreError(f"--out {out} is a file; give the folder that run folders go into")
    executor = executor or LocalExecutor()
    root = Path(run_dir) if run_dir else None
    created = root is not None and not root.exists()
    with contextlib.ExitStack() as held:
        try:
            if root is not None:  # refuse a folder of another config, or in use, before the expensive inputs
                store = RunStore(root)
                held.enter_context(folder_lock(root, "run folder"))
                store.check_identity({"config": config.to_dict()}, force)
            inputs = prepare_inputs(config, progress, executor)
            if root is None:
                root = Path(out) / run_id(config, inputs)
                created = not root.exists()
                store = RunStore(root)
                held.enter_context(folder_lock(root, "run folder"))
            options = RunOptions(force, redo, progress, executor, mix_nodes, say)
            return _run_methods(names, grids, inputs, store, started, options)
        except BaseException as exc:
            if (created and not isinstance(exc, FolderBusyError) and root.is_dir()
                    and not any((root / PARTS).glob("*.json"))):
                shutil.rmtree(root, ignore_errors=True)  # nothing finished: leave no empty folder behind
            raise


def _overhead(inputs: RunInputs, points: pd.DataFrame) -> dict[str, float]:
    """The harness's cost per timed query (``bench.measure.overhead``) against the fastest method's mean latency."""
    cfg = inputs.config
    _, rows = timed_query_rows(inputs)
    with threadpool_limits(limits=cfg.timing.threads):
        cost = harness_overhead(inputs.matrices("embedding")[1], rows, cfg.k, cfg.timing.warmup, cfg.timing.repeats)
    fastest = points.dropna(subset=["latency_mean_ms"]).sort_values("latency_mean_ms").head(1)
    out = {"call_ms": cost["call_s"] * 1e3, "checks_ms": cost["checks_s"] * 1e3}
    if len(fastest):
        ms = float(fastest["latency_mean_ms"].iloc[0])
        out.update({"fastest_label": str(fastest["label"].iloc[0]),
                    "fastest_query_params": str(fastest["query_params"].iloc[0]),
                    "fastest_latency_mean_ms": ms, "fraction_of_fastest": out["call_ms"] / ms})
    return out


def retime_run(config: RunConfig, run_dir: Path | str, progress: bool = True,
               executor: Executor | None = None) -> RunOutcome:
    """Re-time the compared points of the finished run in ``run_dir`` (``bench.run.retime``) from its
    combined tables, without sweeping again: for a run whose parts are gone (a committed run
    folder holds only the combined tables) or that finished before re-timing existed. The folder
    must hold a finished run of ``config`` with this encoder and query set."""
    root = Path(run_dir)
    store = RunStore(root)
    if not (root / RUN_JSON).exists() or not (root / POINTS).exists() or not (root / OUTCOMES).exists():
        raise RunStoreError(f"{root}: no finished run to re-time (run.json, points.parquet and outcomes.parquet "
                            f"are needed); run it first")
    info = json.loads((root / RUN_JSON).read_text())
    if not info.get("finished"):
        raise RunStoreError(f"{root}: its run did not finish; run it again (finished parts are reused) instead")
    executor = executor or LocalExecutor()
    with folder_lock(root, "run folder"):
        store.check_identity({"config": config.to_dict()}, False)
        inputs = prepare_inputs(config, progress, executor)
        store.check_identity({"config": config.to_dict(), "encoder_sha256": inputs.encoder.sha256,
                              "queryset_content_hash": inputs.queryset.content_hash}, False)
        points = pd.read_parquet(root / POINTS)
        _retime_compared(store, points, list(points["method"].unique()), inputs, executor)
        return RunOutcome(root, pd.read_parquet(root / RESULTS), pd.read_parquet(root / POINTS), info)


def _retime_job(inputs: RunInputs, plugins: list[Path], selection: pd.DataFrame) -> pd.DataFrame:
    """Build each configuration of ``selection`` (a group of ``retime_groups``) afresh (fit and
    build) and re-time its points."""
    for path in plugins:
        load_plugin(path)
    inputs = private_inputs(inputs)
    built = {}
    for r in selection.drop_duplicates("label").to_dict("records"):
        with threadpool_limits(limits=inputs.config.timing.threads):
            built[r["label"]] = build_method(r["method"], json.loads(r["build_params"]), inputs).method
    return retime([(r["label"], r["query_params"], built[r["label"]]) for r in selection.to_dict("records")],
                  inputs, timed_query_rows, list(selection[BESIDE]))


def _retime_compared(store: RunStore, points: pd.DataFrame, names: list[str], inputs: RunInputs,
                     executor: Executor) -> None:
    """Re-time the compared points interleaved (``bench.run.retime``), in the groups of
    ``timing.interleave``, each unless a standing part holds it, and join the re-timings into the
    run's outcomes and points."""
    timing = inputs.config.timing
    repeats = timing.interleaved_repeats
    audio = tuple(n for n in names if method_class(n).input_kind == "audio")  # compared end to end, not decided
    selection = select_compared(points, skip=audio)  # the reference too: one run's DB is small enough
    groups = retime_groups(selection, timing.interleave, RETIMED_PART) if not selection.empty else []
    todo = [(part, group) for part, group in groups if not finished_retime(store, part, group, repeats)]
    if todo:
        print(f"re-timing {len(selection)} compared points interleaved ({repeats} rounds, "
              f"{len(todo)} group{'s' * (len(todo) > 1)}; their configurations built again)")
        t0 = time.perf_counter()
        for number, frame in executor.map(_retime_job, [(group,) for _, group in todo],
                                          shared=(inputs, loaded_plugins()), num_cpus=timing.threads):
            save_retime(store, todo[number][0], frame, todo[number][1], repeats,
                        {"seconds": time.perf_counter() - t0, "node": this_node()})
            t0 = time.perf_counter()
    merge_retimed(store, [part for part, _ in groups])


def reuse_part(store: RunStore, name: str, label: str, query_grid: list[dict], code: str,
               redo: tuple[str, ...]) -> tuple[bool, str]:
    """Whether a finished part of ``label`` can stand, and why (or why not): "" for a part never run."""
    meta, damaged = store.part_meta(label)
    if damaged:
        return False, f"its finished part in {store.root / PARTS} is damaged ({damaged}); running it again"
    if meta is None:
        return False, ""
    if name in redo:
        return False, f"--redo {name}: running it again"
    if "code" not in meta:
        return True, (f"reusing the part finished by an earlier version that did not record its code "
                      f"(pass --redo {name} to run it again)")
    if meta["code"] != code:
        return False, (f"the method's code changed since its part was finished (code {meta['code']} -> {code}); "
                       f"running it again")
    if meta.get("query_grid") != query_grid:
        return False, "its query sweep changed since its part was finished; running it again"
    return True, "done in an earlier run, skipped"


@dataclass(frozen=True)
class RunOptions:
    """How ``run_benchmark`` treats a run folder and where it runs: see its docstring."""

    force: bool = False
    redo: tuple[str, ...] = ()
    progress: bool = True
    executor: Executor = field(default_factory=LocalExecutor)
    mix_nodes: bool = False
    say: Callable[[str], None] = print


def _run_info(names: list[str], inputs: RunInputs, store: RunStore, started: str, options: RunOptions) -> dict:
    """run.json's first form: identity, environment, encoder, query set, corpus and DB; the run
    folder's identity checked and the splits' disjointness enforced first."""
    config = inputs.config
    identity = {"config": config.to_dict(), "encoder_sha256": inputs.encoder.sha256,
                "queryset_content_hash": inputs.queryset.content_hash}
    store.check_identity(identity, options.force)
    overlap = inputs.split_overlap()
    overlap.update({f"content_{k}": v for k, v in inputs.content_overlap.items()})
    if any(overlap.values()):
        raise RuntimeError(f"train/test leak (cross-split pairs; all must be 0): {overlap}")
    return {"run_id": store.root.name, "started": started, "identity": identity, "config": config.to_dict(),
            "methods": names,
            "environment": environment(), "threads": config.timing.threads, "seed": config.seed,
            "encoder": {"name": inputs.encoder.name, "sha256": inputs.encoder.sha256,
                        "ms_per_segment": inputs.encoder_ms, "identity": inputs.encoder.identity},
            "queryset": {"content_hash": inputs.queryset.content_hash, "root": str(inputs.queryset.root),
                         "queries": len(inputs.manifest),
                         **{k: v for k, v in inputs.queryset.info.items() if k in ("libraries", "open_set")}},
            "corpus": {"name": inputs.corpus.name,
                       "identity_hash": stable_hash(inputs.corpus.identity(), n=32)},
            "db": {"segments": len(inputs.db), "tracks": int(inputs.db_segments["track_id"].nunique()),
                   "splits": list(config.db_splits), "distractor_segments": config.distractors,
                   "unreadable_tracks": {"count": len(inputs.unreadable_tracks), "items": inputs.unreadable_tracks}},
            "split_overlap": overlap, "engine": options.executor.describe()}


def _run_methods(names: list[str], grids: dict, inputs: RunInputs, store: RunStore, started: str,
                 options: RunOptions) -> RunOutcome:
    config, root, executor, progress = inputs.config, store.root, options.executor, options.progress
    info = _run_info(names, inputs, store, started, options)
    store.write_run_json(info)
    labels, pending = [], []
    t_methods = time.perf_counter()
    for name in names:
        code = method_code_hash(name)
        for build_params in grids[name]["build"]:
            label = method_label(name, build_params)
            labels.append(label)
            reused, why = reuse_part(store, name, label, grids[name]["query"], code, options.redo)
            if why:
                options.say(f"{label}: {why}")
            if not reused:
                pending.append((name, build_params, label, code))
    if pending and executor.remote:
        prepare_for_remote(inputs, [p[0] for p in pending])
    jobs = [(name, bp, grids[name]["query"], progress and not executor.remote) for name, bp, _, _ in pending]
    bar = tqdm(total=len(jobs), desc=f"method configurations on {executor.name}", unit="config",
               disable=not (progress and executor.remote))
    finished = executor.map(_evaluate_job, jobs, shared=(inputs, loaded_plugins()), num_cpus=config.timing.threads)
    for number, (results, points, outcomes, meta) in finished:
        name, _, label, code = pending[number]
        store.save_part(label, results, points, outcomes, {**meta, "code": code, "query_grid": grids[name]["query"]})
        bar.update(1)
        bar.set_postfix_str(f"{label} on {meta['node']['host']}", refresh=False)
    bar.close()
    inputs.stage_seconds["methods"] = time.perf_counter() - t_methods  # this process's share when resumed
    kinds = node_kinds_of(store, labels)
    check_one_node_kind(kinds, options.mix_nodes)
    results, points = store.combine(labels)
    _retime_compared(store, points, names, inputs, executor)
    points = pd.read_parquet(store.root / POINTS)
    info.update({"finished": now(), "stage_seconds": inputs.stage_seconds, "labels": labels,
                 "node_kinds": sorted(kinds), "harness_overhead": _overhead(inputs, points)})
    store.write_run_json(info)
    return RunOutcome(root, results, points, info)
