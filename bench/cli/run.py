"""``bench run``: the benchmark itself."""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from datasets.corpora.registry import CORPORA

from .options import add_engine_arguments, executor_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench run``."""
    parser.add_argument("--method", action="append", nargs="+", default=None, metavar="NAME",
                        help="method(s) to run, repeatable, or 'all' (default flowhash); "
                             "the exhaustive reference always runs. See `python -m bench list`")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of RunConfig fields (docs/running.md; configs/ has examples)")
    parser.add_argument("--corpus", choices=CORPORA, default=None, help="override the config's corpus")
    parser.add_argument("--corpus-path", default=None, help="folder of the corpus (folder, fma, debian-music)")
    parser.add_argument("--encoder", default=None,
                        help="the encoder: a checkpoint name or path (default synth-default), a registered encoder "
                             "name, a plugin file (FILE.py or FILE.py:NAME), or precomputed:DIR "
                             "(docs/adding-an-encoder.md)")
    parser.add_argument("--per-cell", type=int, default=None, help="override queries per condition cell")
    parser.add_argument("--distractors", type=int, default=None, metavar="N",
                        help="append N synthetic distractor segments to the DB only (synthesised tracks under their "
                             "own seed, as bench scale's fill; embedding methods only): a DB large enough that "
                             "exact search is not the fastest way (default 0, or the config's)")
    parser.add_argument("--threads", type=int, default=None, help="search threads for torch and faiss (default 1)")
    parser.add_argument("--device", default=None, help="torch device for the encoder and flows (default cpu)")
    parser.add_argument("--out", type=Path, default=Path("reports"),
                        help="parent folder of run folders (default %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="exact run folder (default OUT/<corpus>-<config hash>)")
    parser.add_argument("--force", action="store_true",
                        help="when the run folder holds a run of another configuration, discard its results and "
                             "start over (without it such a folder is refused, naming the differing fields)")
    parser.add_argument("--redo", nargs="+", default=[], metavar="METHOD",
                        help="run these methods' configurations again even if the run folder has them finished")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--plugin", action="append", type=Path, default=[], metavar="FILE",
                        help="a Python module file that registers search methods (repeatable); its methods "
                             "run like built-in ones. See docs/adding-a-method.md")
    parser.add_argument("--retime-only", action="store_true",
                        help="re-time the compared points of the finished run in --run-dir interleaved, from its "
                             "tables, without sweeping again (for a run folder without its parts, e.g. a "
                             "committed one); then rewrite its report")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run, then print the summary."""
    import pandas as pd

    from bench.report.run_report import write_run_report
    from bench.report.summary import format_summary
    from bench.run.config import load_config
    from bench.run.runner import retime_run, run_benchmark
    from datasets.folder_lock import folder_lock
    from methods.registry import load_plugin

    t0 = time.perf_counter()
    for plugin in args.plugin:
        load_plugin(plugin)
    config = load_config(args.config)
    overrides = {k: v for k, v in {"corpus": args.corpus, "corpus_path": args.corpus_path, "encoder": args.encoder,
                                   "device": args.device, "distractors": args.distractors}.items() if v is not None}
    if args.per_cell is not None:
        overrides["queries"] = replace(config.queries, per_cell=args.per_cell)
    if args.threads is not None:
        overrides["timing"] = replace(config.timing, threads=args.threads)
    config = replace(config, **overrides)
    methods = [m for group in (args.method or [["flowhash"]]) for m in group]
    if args.retime_only:
        if args.run_dir is None:
            raise ValueError("--retime-only needs --run-dir: the finished run whose compared points to re-time")
        outcome = retime_run(config, args.run_dir, progress=not args.no_progress, executor=executor_from(args))
    else:
        outcome = run_benchmark(config, methods, args.out, args.run_dir, progress=not args.no_progress, say=print,
                                force=args.force, redo=tuple(args.redo), executor=executor_from(args),
                                mix_nodes=args.mix_nodes)
    with folder_lock(outcome.root, "run folder", quiet=True):  # the run released it; no other writer between
        print(f"report: {write_run_report(outcome.root)}")
    print()
    outcomes = outcome.root / "outcomes.parquet"
    print(format_summary(outcome.results, outcome.points, outcome.info,
                         pd.read_parquet(outcomes) if outcomes.exists() else None))
    print(f"\nresults in {outcome.root} (results.parquet, points.parquet, outcomes.parquet, run.json); "
          f"{time.perf_counter() - t0:.0f} s")
    return 0
