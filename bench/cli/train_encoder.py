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
    protocol_from,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench train-encoder``."""
    from encoders.nafp.model import EncoderConfig
    from encoders.train import LOSSES, TrainConfig

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
    g.add_argument("--loss", choices=LOSSES, default=d.loss,
                   help="nt-xent (NAFP's) or triplet (batch-hard, cosine distance; default %(default)s)")
    g.add_argument("--margin", type=float, default=d.margin, help="triplet margin (default %(default)s)")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="linear learning-rate warm-up before the cosine decay (default %(default)s)")
    a = parser.add_argument_group("augmentation of the positives (train-split noise and rooms only)")
    a.add_argument("--snr-db", type=float, nargs=2, metavar=("LOW", "HIGH"), default=list(d.snr_db),
                   help="noise SNR range, uniform (default %(default)s)")
    a.add_argument("--p-noise", type=float, default=d.p_noise, help="probability of noise (default %(default)s)")
    a.add_argument("--p-reverb", type=float, default=d.p_reverb, help="probability of a room (default %(default)s)")
    a.add_argument("--p-eq", type=float, default=d.p_eq,
                   help="probability of a random low-pass / high-pass / peaking EQ (default %(default)s)")
    a.add_argument("--max-shift-s", type=float, default=d.max_shift_s,
                   help="largest time offset of a positive against its anchor (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="default %(default)s")
    g.add_argument("--val-per-cell", type=int, default=d.val_per_cell,
                   help="validation queries per duration (val split, 10 dB, no reverb; default %(default)s)")
    g.add_argument("--val-every", type=int, default=d.val_every,
                   help="validate every N epochs, and after the last (default %(default)s)")
    g.add_argument("--init-from", default=None, metavar="ENCODER",
                   help="start from this checkpoint's weights (a shipped name such as debian-music-v2, or a "
                        "path) instead of a random initialisation: fine-tuning; the model size is the "
                        "checkpoint's, the optimiser and learning-rate schedule start afresh")
    g.add_argument("--channels", type=int, nargs="+", default=None,
                   help=f"channels of the separable blocks (default {list(EncoderConfig.channels)}, "
                        "or the --init-from checkpoint's)")
    g.add_argument("--dim", type=int, default=None,
                   help=f"embedding size (default {EncoderConfig.dim}, or the --init-from checkpoint's)")
    add_device_arguments(parser, default_threads=0)
    add_protocol_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train and report where the checkpoint is."""
    from dataclasses import replace

    from encoders.nafp.checkpoint import load_checkpoint
    from encoders.nafp.model import EncoderConfig
    from encoders.train import TrainConfig, total_train_seconds, train_encoder

    set_threads(args.threads)
    init = load_checkpoint(args.init_from, protocol_from(args)) if args.init_from else None
    model_config = init.model.config if init else EncoderConfig()
    if args.channels is not None:
        model_config = replace(model_config, channels=tuple(args.channels))
    if args.dim is not None:
        model_config = replace(model_config, dim=args.dim)
    corpus = corpus_from(args)
    noise, rooms = banks_from(args)
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_pairs=args.batch_pairs,
                         lr=args.lr, temperature=args.temperature, seed=args.seed, val_per_cell=args.val_per_cell,
                         val_every=args.val_every, loss=args.loss, margin=args.margin, warmup_steps=args.warmup_steps,
                         snr_db=tuple(args.snr_db), p_noise=args.p_noise, p_reverb=args.p_reverb, p_eq=args.p_eq,
                         max_shift_s=args.max_shift_s)
    t0 = time.perf_counter()
    encoder = train_encoder(corpus, noise, rooms, args.out, config, model_config,
                            device=args.device, progress=not args.no_progress, init_from=init)
    size = args.out.stat().st_size
    since = ""
    if "init_from" in encoder.record:
        since = (f" (from {encoder.record['init_from']['name']}; "
                 f"{total_train_seconds(encoder.record):.0f} s in all)")
    print(f"checkpoint {args.out} ({size / 1e6:.2f} MB, sha256 {encoder.sha256[:16]}...); "
          f"{encoder.record['epochs_done']} epochs, {encoder.record['train_seconds']:.0f} s of training{since}; "
          f"this call {time.perf_counter() - t0:.0f} s")
    return 0
