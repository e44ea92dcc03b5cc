"""``bench queries``: build a standardized degraded query set."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from datasets.queries.conditions import DRY, check_distinct, reverb_label, snr_label
from datasets.queries.queryset import QuerySetConfig, build_queryset, default_queryset_dir

from .options import (
    DURATION,
    REVERB,
    SNR,
    add_bank_arguments,
    add_corpus_arguments,
    add_protocol_arguments,
    banks_from,
    corpus_from,
    protocol_from,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench queries``."""
    add_corpus_arguments(parser)
    add_grid_arguments(parser)
    add_bank_arguments(parser)
    parser.add_argument("--force", action="store_true", help="replace another query set found in --out")
    add_protocol_arguments(parser)


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The query grid's options (durations, SNRs, reverbs, counts, seed, split, --out)."""
    g = parser.add_argument_group("query grid")
    g.add_argument("--durations", nargs="+", type=DURATION, default=list(QuerySetConfig.durations),
                   metavar="S", help="query durations in seconds (default 1 2 3 5)")
    g.add_argument("--snr", nargs="+", type=SNR, default=list(QuerySetConfig.snrs), metavar="DB",
                   help="'clean' and/or SNRs in dB, -20..60 (default clean 20 10 5 0)")
    g.add_argument("--reverb", nargs="+", type=REVERB, default=list(QuerySetConfig.reverbs), metavar="RT60",
                   help="'none' and/or room RT60s in seconds, 0.1..2 (default none 0.3 0.6 0.9)")
    g.add_argument("--transforms", nargs="+", default=list(QuerySetConfig.transforms), metavar="T",
                   help="degradation axis: none, stretch:F (tempo x F, pitch kept), pitch:S (semitones), speed:F "
                        "(resampled), mp3:KBPS, opus:KBPS, phone:gsm, phone:ulaw (default none)")
    g.add_argument("--absent-share", type=float, default=QuerySetConfig.absent_share, metavar="SHARE",
                   help="open set: share (0..0.5) of each cell's queries, and of the test tracks, whose song is in "
                        "no DB; as many calibration queries come from held-out val tracks (default 0)")
    g.add_argument("--per-cell", type=int, default=QuerySetConfig.per_cell,
                   help="queries per (duration, SNR, reverb) cell (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="query sampling seed (default %(default)s)")
    g.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="track split the queries come from (default %(default)s)")
    g.add_argument("--rt60-tolerance", type=float, default=QuerySetConfig.rt60_tolerance,
                   help="rooms within this many seconds of a target RT60 qualify (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="query-set folder (default: a folder in the cache named by the config)")


def config_from(args: argparse.Namespace) -> QuerySetConfig:
    """The QuerySetConfig the options describe; a repeated value names its option."""
    for option, values in (("--durations", args.durations), ("--snr", args.snr)):
        check_distinct(option, values)
    check_distinct("--reverb", args.reverb, DRY)
    return QuerySetConfig(durations=tuple(args.durations), snrs=tuple(args.snr), reverbs=tuple(args.reverb),
                          per_cell=args.per_cell, seed=args.seed, split=args.split,
                          rt60_tolerance=args.rt60_tolerance, transforms=tuple(args.transforms),
                          absent_share=args.absent_share)


def run(args: argparse.Namespace) -> int:
    """Build the query set and print where it is and what it holds."""
    t0 = time.perf_counter()
    protocol = protocol_from(args)
    config = config_from(args)
    if min(config.durations) < protocol.segment_s:
        raise ValueError(f"query duration {min(config.durations):g} s is shorter than one DB segment "
                         f"({protocol.segment_s:g} s)")
    corpus = corpus_from(args)
    noise, rooms = banks_from(args)
    out = args.out or default_queryset_dir(corpus, config, noise, rooms)
    qs = build_queryset(corpus, noise, rooms, config, out, progress=not args.no_progress, force=args.force)
    c = qs.info["counts"]
    print(f"query set: {qs.root}")
    print(f"  content hash {qs.content_hash}")
    print(f"  {c['queries']} queries ({len(config.durations)} durations x {len(config.snrs)} SNRs x "
          f"{len(config.reverbs)} reverbs x {len(config.transforms)} transforms x {config.per_cell})"
          f" from {c['tracks_queried']} tracks; "
          f"DB {c['db_segments']} segments of {c['db_tracks']} tracks")
    print(f"  durations {' '.join(f'{d:g}' for d in config.durations)} s; SNR "
          f"{' '.join(snr_label(s) for s in config.snrs)}; reverb {' '.join(reverb_label(r) for r in config.reverbs)}")
    if config.has_transforms:
        print(f"  transforms {' '.join(config.transforms)}")
    if "open_set" in qs.info:
        roles = qs.info["open_set"]["roles"]
        print(f"  open set: {roles.get('absent', 0)} absent and {roles.get('calibration', 0)} calibration queries "
              f"(songs in no DB) beside {roles.get('present', 0)} present ones")
    print(f"  excluded: {c['tracks_excluded_short']['count']} tracks too short, "
          f"{c['tracks_unreadable']['count']} unreadable, {c['files_skipped']['count']} files skipped")
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    return 0
