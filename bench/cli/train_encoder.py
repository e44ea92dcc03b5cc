"""``bench train-encoder``: train the fingerprint encoder contrastively on a corpus's train split."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.run.environment import set_threads

from .options import (
    add_bank_arguments,
    add_corpus_arguments,
    add_device_arguments,
    add_protocol_arguments,
    banks_from,
    corpus_from,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench train-encoder``."""
    from encoders.model import EncoderConfig
    from encoders.train import TrainConfig

    add_corpus_arguments(parser)
    add_bank_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path to write (resumes if interrupted)")
    g = parser.add_argument_group("training")
    d = TrainConfig()
    g.add_argument("--epochs", type=int, default=d.epochs, help="epochs (default %(default)s)")
    g.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="default %(default)s")
    g.add_argument("--batch-pairs", type=int, default=d.batch_pairs,
                   help="anchor/positive pairs per step; the rest of the batch are negatives (default %(default)s)")
    g.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate, cosine-decayed (default %(default)s)")
    g.add_argument("--temperature", type=float, default=d.temperature, help="NT-Xent temperature (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="default %(default)s")
    g.add_argument("--val-per-cell", type=int, default=d.val_per_cell,
                   help="validation queries per duration (val split, 10 dB, no reverb; default %(default)s)")
    g.add_argument("--channels", type=int, nargs="+", default=list(EncoderConfig.channels),
                   help="channels of the separable blocks (default %(default)s)")
    g.add_argument("--dim", type=int, default=EncoderConfig.dim, help="embedding size (default %(default)s)")
    add_device_arguments(parser, default_threads=0)
    add_protocol_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train and report where the checkpoint is."""
    from encoders.model import EncoderConfig
    from encoders.train import TrainConfig, train_encoder

    set_threads(args.threads)
    corpus = corpus_from(args)
    noise, rooms = banks_from(args)
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_pairs=args.batch_pairs,
                         lr=args.lr, temperature=args.temperature, seed=args.seed, val_per_cell=args.val_per_cell)
    t0 = time.perf_counter()
    encoder = train_encoder(corpus, noise, rooms, args.out, config,
                            EncoderConfig(channels=tuple(args.channels), dim=args.dim),
                            device=args.device, progress=not args.no_progress)
    size = args.out.stat().st_size
    print(f"checkpoint {args.out} ({size / 1e6:.2f} MB, sha256 {encoder.sha256[:16]}...); "
          f"{encoder.record['epochs_done']} epochs, {encoder.record['train_seconds']:.0f} s of training; "
          f"this call {time.perf_counter() - t0:.0f} s")
    return 0
