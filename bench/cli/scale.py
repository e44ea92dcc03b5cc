"""``bench scale``: the scaling run (the DB grows by distractors, the query set stays), then its report."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .options import add_engine_arguments, executor_from

if TYPE_CHECKING:
    from bench.scale.config import ScaleConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench scale``."""
    parser.add_argument("--config", type=Path, default=Path("configs/scale.yml"),
                        help="YAML scaling config: run, sizes, methods, distractors, budgets (default %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=Path("reports/scale"),
                        help="the run folder (default %(default)s); finished parts in it are reused")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="N",
                        help="override the config's DB sizes, as its 'sizes' takes them: segment counts, ascending, "
                             "'base' (the run's own DB) first, 'max' (all there is) last")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="override the config's methods (exhaustive always runs)")
    parser.add_argument("--workers", type=int, default=None, help="embedding processes (default: the config's)")
    parser.add_argument("--force", action="store_true",
                        help="when the run folder holds another configuration's run, discard it and start over")
    parser.add_argument("--redo", nargs="+", default=[], metavar="METHOD",
                        help="run these methods again at every size even if finished")
    parser.add_argument("--validate-model", action="store_true",
                        help="validate the fingerprint model: run the config with its real-music distractors (into "
                             "RUN_DIR/real) and with model tracks in their place (RUN_DIR/synthetic), then compare "
                             "each method at each sweep point and size, its latency timed interleaved on both DBs "
                             "(RUN_DIR/validation.csv, validation.md)")
    parser.add_argument("--shards", type=int, default=None, metavar="S",
                        help="after the sweep, measure the sharded plan on Ray at the run's largest size: the DB cut "
                             "into S shards, each a Ray actor, top-k merged (RUN_DIR/sharded.csv; docs/scaling.md)")
    parser.add_argument("--shard-methods", nargs="+", default=["exhaustive", "flowhash", "ivf"], metavar="NAME",
                        help="the methods measured sharded (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_engine_arguments(parser)


def scale_config(args: argparse.Namespace) -> ScaleConfig:
    """The config file with the command line's overrides, checked as the config file is (its run
    section stays as parsed)."""
    from dataclasses import replace

    from bench.scale.config import load_scale_config, scale_config_from_dict

    config = load_scale_config(args.config)
    overrides = {key: value for key, value in (("sizes", args.sizes), ("methods", args.methods),
                                               ("workers", args.workers)) if value is not None}
    if not overrides:
        return config
    raw = {**config.to_dict(), "run": {}, **overrides}
    return replace(scale_config_from_dict(raw, f"{args.config} with --{' --'.join(overrides)}"), run=config.run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep, write the report, print where it went."""
    from bench.report.scale_report import write_scale_report
    from bench.scale.sweep import run_scale
    from datasets.folder_lock import folder_lock

    t0 = time.perf_counter()
    config = scale_config(args)
    unknown = sorted(set(args.shard_methods) - set(config.methods)) if args.shards else []
    if unknown:  # before the sweep, not after it
        raise ValueError(f"--shard-methods {' '.join(unknown)}: not among this run's methods "
                         f"({', '.join(config.methods)})")
    if args.validate_model:
        return _validate_model(args, config, t0)
    outcome = run_scale(config, args.run_dir, progress=not args.no_progress, force=args.force, redo=tuple(args.redo),
                        executor=executor_from(args), mix_nodes=args.mix_nodes)
    if args.shards:
        _measure_sharded(args, config, outcome.root)
    with folder_lock(outcome.root, "run folder", quiet=True):  # the run released it; no other writer between
        print(f"report: {write_scale_report(outcome.root)}")
    print(f"results in {outcome.root}; {time.perf_counter() - t0:.0f} s")
    return 0


def _validate_model(args: argparse.Namespace, config: ScaleConfig, t0: float) -> int:
    from bench.report.scale_report import write_scale_report, write_validation_report
    from bench.scale.model_latency import time_sides
    from bench.scale.model_validation import compare_sides, sides
    from bench.scale.sweep import run_scale
    from datasets.folder_lock import folder_lock

    for side, side_config in sides(config).items():
        print(f"validation: the {side} side", flush=True)
        outcome = run_scale(side_config, args.run_dir / side, progress=not args.no_progress, force=args.force,
                            redo=tuple(args.redo), executor=executor_from(args), mix_nodes=args.mix_nodes)
        with folder_lock(outcome.root, "run folder", quiet=True):
            print(f"report: {write_scale_report(outcome.root)}")
    print("validation: the latency of both sides, interleaved", flush=True)
    with folder_lock(args.run_dir, "validation folder"):
        time_sides(sides(config), args.run_dir, progress=not args.no_progress)
    compare_sides(args.run_dir, config.run.seed)
    print(f"report: {write_validation_report(args.run_dir)}")
    print(f"validation in {args.run_dir}; {time.perf_counter() - t0:.0f} s")
    return 0


def _measure_sharded(args: argparse.Namespace, config: ScaleConfig, root: Path) -> None:
    from bench.distributed.cluster import connect
    from bench.scale.sharded_run import SHARDED_CSV, measure_sharded

    connect(args.ray_address, args.ray_cpus)
    measure_sharded(config, root, args.shards, list(args.shard_methods), progress=not args.no_progress)
    print(f"sharded plan: {root / SHARDED_CSV}")
