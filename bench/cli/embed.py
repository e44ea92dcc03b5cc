"""``bench embed``: embed a corpus's DB segments and report throughput."""
from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from bench.run.environment import set_threads

from .options import (
    add_corpus_arguments,
    add_device_arguments,
    add_engine_arguments,
    add_protocol_arguments,
    corpus_from,
    executor_from,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench embed``."""
    add_corpus_arguments(parser)
    parser.add_argument("--encoder", default="synth-default",
                        help="a checkpoint name or path (default %(default)s), a registered encoder name or a plugin "
                             "file (FILE.py or FILE.py:NAME)")
    parser.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                        help="which tracks to embed (default %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="embed again even if cached (to measure speed)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="segments per forward pass (default encoders.embed.BATCH_SIZE, 64)")
    parser.add_argument("--workers", type=int, default=None,
                        help="embedding workers of one torch thread each: processes here, or Ray workers with "
                             "--engine ray (default: 1, this process on --threads threads; with Ray, one per CPU "
                             "of the cluster); with more than one, or Ray, rows go through the on-disk store "
                             "(encoders/store.py), as `bench scale` embeds")
    parser.add_argument("--store", type=Path, default=None,
                        help="keep the store in this folder (resumed if interrupted; default: a temporary folder)")
    add_device_arguments(parser, default_threads=0)
    add_engine_arguments(parser)
    add_protocol_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Embed and print audio seconds per wall second."""
    import torch

    from encoders.embed import BATCH_SIZE, corpus_segments, db_cache_key, db_identity, embed_db

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: allowed >= 1 (segments per forward pass); pass a positive "
                         f"number, or leave it out for {BATCH_SIZE}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: allowed >= 1")
    threads = set_threads(args.threads)
    corpus = corpus_from(args)
    # on Ray the workers move the encoder to --device; the driver needs no GPU of its own
    from encoders.registry import open_encoder

    encoder = open_encoder(args.encoder, corpus.protocol, "cpu" if args.engine == "ray" else args.device)
    segments = corpus_segments(corpus, None if args.split == "all" else args.split)
    audio_s = sum(t.duration_s for t in corpus.tracks(None if args.split == "all" else args.split))
    executor = executor_from(args)
    before = 0
    t0 = time.perf_counter()
    if executor.remote or (args.workers or 1) > 1 or args.store is not None:
        from encoders.ray_embed import cluster_workers, ray_stream
        from encoders.store import fill_store

        stream = None
        if executor.remote:
            workers = args.workers or cluster_workers()
            stream = ray_stream(encoder, {"corpus": corpus}, workers, args.batch_size or BATCH_SIZE, args.device)
        else:
            workers = args.workers or 1
        folder = nullcontext(str(args.store)) if args.store else tempfile.TemporaryDirectory(prefix="flowhash-embed-")
        with folder as root:
            before = _rows_done(Path(root))
            # keyed by all the rows depend on: the corpus, the split's segment table, the protocol, the encoder
            store = fill_store(root, db_cache_key(encoder, corpus, segments), segments.assign(source="corpus"),
                               {"corpus": corpus}, encoder, progress=not args.no_progress, workers=workers,
                               batch_size=args.batch_size or BATCH_SIZE, stream=stream,
                               chunk_rows=executor.store_chunk_rows,
                               identity={"encoder": encoder.sha256, **db_identity(corpus, segments)})
            emb, hit = store.rows, before == len(segments)
            wall = time.perf_counter() - t0
        if 0 < before < len(segments):
            print(f"store {args.store}: resumed after {before} of {len(segments)} rows; the throughput below "
                  f"counts this run's {len(segments) - before} rows")
            audio_s *= (len(segments) - before) / len(segments)
        where = (f"{workers} Ray workers of 1 CPU ({executor.describe()['address']})" if executor.remote else
                 f"{workers} processes of 1 torch thread" if workers > 1 else f"{threads} torch threads")
    else:
        emb, hit = embed_db(encoder, corpus, segments, progress=not args.no_progress,
                            batch_size=args.batch_size or BATCH_SIZE, cache=not args.no_cache)
        wall = time.perf_counter() - t0
        where = f"{threads} torch threads"
    print(f"encoder {encoder.name} (sha256 {encoder.sha256[:16]}...), device {args.device}, {where}")
    print(f"{len(emb)} segments of {segments['track_id'].nunique()} tracks ({audio_s / 3600:.2f} h of audio), "
          f"{'read from cache' if hit else 'embedded'} in {wall:.1f} s")
    if not hit:
        print(f"throughput: {audio_s / wall:.0f}x real time (seconds of audio per second of wall time, "
              f"decoding included; torch {torch.__version__}), {(len(emb) - before) / wall:.0f} segments a second at a "
              f"{corpus.protocol.hop_s:g} s hop")
    return 0


def _rows_done(root: Path) -> int:
    """Rows a store folder already holds (0 for none)."""
    import json

    try:
        return int(json.loads((root / "state.json").read_text()).get("rows_done", 0))
    except (OSError, ValueError):
        return 0
