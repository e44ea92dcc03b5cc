"""``bench corpus``: describe a corpus (and fetch it, for debian-music)."""
from __future__ import annotations

import argparse

from .options import add_corpus_arguments, add_protocol_arguments, corpus_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench corpus``."""
    add_corpus_arguments(parser)
    parser.add_argument("--list", action="store_true", help="list every track with its split and length")
    parser.add_argument("--no-decode", action="store_true",
                        help="count tracks from their file headers only; by default every track is decoded once "
                             "(cached) and those that do not decode (corrupt, NaN or infinite samples) are counted "
                             "as unreadable, as the query sets and the DB leave them out")
    add_protocol_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print tracks and hours per split, and the skipped and unreadable files."""
    from datasets.queries.split_segments import readable_tracks

    corpus = corpus_from(args)
    print(f"corpus {corpus.name}: {len(corpus.tracks())} tracks")
    unreadable: list[dict] = []
    for split in ("train", "val", "test"):
        tracks = corpus.tracks(split)
        hours = sum(t.duration_s for t in tracks) / 3600
        line = f"  {split:5s} {len(tracks):5d} tracks {hours:7.2f} h"
        if not args.no_decode and tracks:
            bad = readable_tracks(corpus, split, progress=not args.no_progress)[1]
            unreadable += bad
            line += f"  ({len(bad)} unreadable, left out of query sets and the DB)" if bad else ""
        print(line)
    if corpus.skipped:
        print(f"  skipped {len(corpus.skipped)} files:")
        for s in corpus.skipped:
            print(f"    {s.path}: {s.reason}")
    if unreadable:
        print(f"  unreadable {len(unreadable)} tracks:")
        for item in unreadable:
            print(f"    {item['track_id']}: {item['reason']}")
    if args.list:
        for t in corpus.tracks():
            print(f"{corpus.split(t.track_id):5s} {t.duration_s:8.1f} s  {t.track_id}")
    return 0
