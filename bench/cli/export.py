"""``bench export-audio`` and ``bench export``: a run's audio for an outside encoder, and a run's
vectors with exact neighbours for ANN tools (``bench/export``)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def add_audio_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench export-audio``."""
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of RunConfig fields: the run whose audio to export (default: the default run)")
    parser.add_argument("--corpus-path", default=None, help="override the config's corpus folder")
    parser.add_argument("--encoder", default=None,
                        help="override the config's encoder: its recipe draws the train pairs, and --embed runs it")
    parser.add_argument("--per-cell", type=int, default=None, help="override queries per condition cell")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (resumed if interrupted)")
    parser.add_argument("--embed", action="store_true",
                        help="also write the encoder's own vectors under OUT/vectors, in the layout "
                             "`--encoder precomputed:OUT/vectors` reads (a reference for an outside encoder's files)")
    parser.add_argument("--no-pairs", action="store_true",
                        help="leave out the train pairs' audio (enough for runs of methods that learn nothing)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run_audio(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    from bench.export.audio import export_audio
    from bench.run.config import load_config

    config = load_config(args.config)
    overrides = {k: v for k, v in {"corpus_path": args.corpus_path, "encoder": args.encoder}.items() if v is not None}
    if args.per_cell is not None:
        overrides["queries"] = replace(config.queries, per_cell=args.per_cell)
    manifest = export_audio(replace(config, **overrides), args.out, embed=args.embed, pairs=not args.no_pairs,
                            progress=not args.no_progress)
    counts = manifest["counts"]
    print(f"{args.out}: {counts['db_segments']} DB segments of {counts['db_tracks']} tracks, "
          f"{counts['query_segments']} query segments"
          + (f", {counts['train_pairs_fit']} + {counts['train_pairs_held-out']} train pairs"
             if manifest["pairs"] else "")
          + (f"; the encoder's vectors in {args.out / 'vectors'}" if args.embed else ""))
    print("embed them as docs/adding-an-encoder.md says, then: python -m bench run --encoder precomputed:DIR ...")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench export``."""
    from bench.export.vectors import CODE_METHODS, DEFAULT_COUNT, FORMATS

    parser.add_argument("run_dir", type=Path, help="a run folder made by `bench run` (its run.json names the config)")
    parser.add_argument("--format", choices=FORMATS, required=True,
                        help="ann-benchmarks: one HDF5 file (train/test/neighbors/distances); parquet: "
                             "VectorDBBench's train/test/neighbors Parquet files")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write (default RUN_DIR-export-FORMAT beside the run folder, not in it: a "
                             "published run folder stays as committed)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT,
                        help="exact neighbours per query segment (default %(default)s)")
    parser.add_argument("--codes", choices=CODE_METHODS, default=None,
                        help="also write this hash method's bits as ann-benchmarks' 'bit' point type, with exact "
                             "Hamming neighbours (its default build configuration, fitted on the run's train pairs)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Export and list the files written."""
    from bench.export.vectors import export_run

    out = args.out or args.run_dir.parent / f"{args.run_dir.resolve().name}-export-{args.format}"
    for path in export_run(args.run_dir, out, args.format, args.count, args.codes, progress=not args.no_progress):
        print(path)
    return 0
