"""``bench eval-encoder``: an encoder's top-1 hit rate over a query grid under exact search."""
from __future__ import annotations

import argparse

import pandas as pd

from bench.run.environment import set_threads

from .options import (
    add_bank_arguments,
    add_corpus_arguments,
    add_device_arguments,
    add_protocol_arguments,
    banks_from,
    corpus_from,
)
from .queries import add_grid_arguments, config_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench eval-encoder``."""
    add_corpus_arguments(parser)
    add_grid_arguments(parser)
    add_bank_arguments(parser)
    parser.add_argument("--encoder", default="synth-default",
                        help="shipped name or checkpoint path (default %(default)s)")
    parser.add_argument("--untrained", action="store_true",
                        help="also evaluate a randomly initialised encoder of the same architecture")
    parser.add_argument("--level", choices=("exact", "near", "track"), default="exact",
                        help="hit level to tabulate (default %(default)s)")
    parser.add_argument("--repeats", action="store_true",
                        help="also tabulate the right-track misses at a place whose clean audio repeats the query's "
                             "(normalised correlation over lags up to --max-lag-s): misses no fingerprint can avoid")
    parser.add_argument("--max-lag-s", type=float, default=0.5,
                        help="largest lag of the --repeats correlation, seconds (default %(default)s: one 0.5 s hop)")
    add_device_arguments(parser, default_threads=0)
    add_protocol_arguments(parser)


def grid_table(outcomes: pd.DataFrame, level: str) -> pd.DataFrame:
    """Hit rate (%) with rows duration x SNR and one column per reverb condition."""
    table = outcomes.pivot_table(index=["duration_s", "snr"], columns="reverb", values=level, aggfunc="mean",
                                 sort=False)
    return (100 * table).round(1)


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the query set, embed, search exhaustively and print the grid."""
    from datasets.queries.queryset import build_queryset, default_queryset_dir
    from datasets.queries.repeats import repeat_similarity, repeat_table
    from encoders.nafp.checkpoint import load_checkpoint, untrained_encoder
    from encoders.validate import query_outcomes

    if args.max_lag_s < 0:
        raise SystemExit(f"error: --max-lag-s {args.max_lag_s}: allowed >= 0")
    set_threads(args.threads)
    corpus = corpus_from(args)
    noise, rooms = banks_from(args)
    config = config_from(args)
    out = args.out or default_queryset_dir(corpus, config, noise, rooms)
    qs = build_queryset(corpus, noise, rooms, config, out, progress=not args.no_progress)
    encoders = [load_checkpoint(args.encoder, corpus.protocol, args.device)]
    if args.untrained:
        encoders.append(untrained_encoder(corpus.protocol, encoders[0].model.config, device=args.device))
    print(f"query set {qs.root} (hash {qs.content_hash[:16]}...), {qs.info['counts']['queries']} queries, "
          f"DB {qs.info['counts']['db_segments']} segments; exact inner-product search, top-1 {args.level} hit rate %")
    for enc in encoders:
        outcomes = query_outcomes(enc, corpus, qs, progress=not args.no_progress)
        print(f"\nencoder {enc.name} (sha256 {enc.sha256[:16]}...): overall {100 * outcomes[args.level].mean():.1f}%")
        print(grid_table(outcomes, args.level).to_string())
        if args.repeats:
            similarity = repeat_similarity(corpus, outcomes, args.max_lag_s)
            print("\nright-track misses at a place repeating the query's audio (% of queries; "
                  f"best normalised correlation of the clean audio, lags up to {args.max_lag_s:g} s):")
            print(repeat_table(outcomes, similarity).to_string())
    return 0
