"""``bench embed``: embed a corpus's DB segments and report throughput."""
from __future__ import annotations

import argparse
import time

from bench.run.environment import set_threads

from .options import add_corpus_arguments, add_device_arguments, add_protocol_arguments, corpus_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench embed``."""
    add_corpus_arguments(parser)
    parser.add_argument("--encoder", default="synth-default",
                        help="shipped encoder name or checkpoint path (default %(default)s)")
    parser.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                        help="which tracks to embed (default %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="embed again even if cached (to measure speed)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="segments per forward pass (default encoders.embed.BATCH_SIZE, 64)")
    parser.add_argument("--workers", type=int, default=1,
                        help="embedding processes of one torch thread each (default %(default)s: this process, "
                             "on --threads threads); with more, rows go through the on-disk store "
                             "(encoders/store.py) in a temporary folder, as `bench scale` embeds")
    add_device_arguments(parser, default_threads=0)
    add_protocol_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Embed and print audio seconds per wall second."""
    import torch

    from encoders.checkpoint import load_checkpoint
    from encoders.embed import BATCH_SIZE, corpus_segments, embed_db

    threads = set_threads(args.threads)
    corpus = corpus_from(args)
    encoder = load_checkpoint(args.encoder, corpus.protocol, args.device)
    segments = corpus_segments(corpus, None if args.split == "all" else args.split)
    audio_s = sum(t.duration_s for t in corpus.tracks(None if args.split == "all" else args.split))
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: allowed >= 1")
    t0 = time.perf_counter()
    if args.workers > 1:
        import tempfile

        from encoders.store import fill_store

        with tempfile.TemporaryDirectory(prefix="flowhash-embed-") as tmp:
            store = fill_store(tmp, "bench-embed", segments.assign(source="corpus"), {"corpus": corpus}, encoder,
                               progress=not args.no_progress, workers=args.workers,
                               batch_size=args.batch_size or BATCH_SIZE)
            emb, hit = store.rows, False
            wall = time.perf_counter() - t0
    else:
        emb, hit = embed_db(encoder, corpus, segments, progress=not args.no_progress,
                            batch_size=args.batch_size or BATCH_SIZE, cache=not args.no_cache)
        wall = time.perf_counter() - t0
    where = f"{args.workers} processes of 1 torch thread" if args.workers > 1 else f"{threads} torch threads"
    print(f"encoder {encoder.name} (sha256 {encoder.sha256[:16]}...), device {args.device}, {where}")
    print(f"{len(emb)} segments of {segments['track_id'].nunique()} tracks ({audio_s / 3600:.2f} h of audio), "
          f"{'read from cache' if hit else 'embedded'} in {wall:.1f} s")
    if not hit:
        print(f"throughput: {audio_s / wall:.0f}x real time (seconds of audio per second of wall time, "
              f"decoding included; torch {torch.__version__}), {len(emb) / wall:.0f} segments a second at a "
              f"{corpus.protocol.hop_s:g} s hop")
    return 0
