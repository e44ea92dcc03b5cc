"""``bench train-encoder`` and ``bench eval-encoder``: train the built-in fingerprint encoder
contrastively on a corpus's train split, and measure an encoder's top-1 hit rate over a query grid
under exact search."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

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
from .queries import add_grid_arguments, config_from


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench train-encoder``."""
    from encoders.builtin.nafp import EncoderConfig
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
    g.add_argument("--architecture", choices=("nafp", "transformer"), default=None,
                   help="nafp: the NAFP-style separable convolutions (encoders/builtin/nafp.py); transformer: a "
                        "transformer over log-mel patches (encoders/builtin/transformer.py) (default nafp, or the "
                        "--init-from checkpoint's)")
    g.add_argument("--channels", type=int, nargs="+", default=None,
                   help=f"channels of the separable blocks (default {list(EncoderConfig.channels)}, "
                        "or the --init-from checkpoint's)")
    g.add_argument("--dim", type=int, default=None,
                   help=f"embedding size (default {EncoderConfig.dim}, or the --init-from checkpoint's)")
    add_device_arguments(parser, default_threads=0)
    add_protocol_arguments(parser)


def run_train(args: argparse.Namespace) -> int:
    """Train and report where the checkpoint is."""
    from dataclasses import replace

    from encoders.builtin.checkpoint import load_checkpoint
    from encoders.builtin.nafp import EncoderConfig
    from encoders.builtin.transformer import TransformerConfig
    from encoders.train import TrainConfig, total_train_seconds, train_encoder

    set_threads(args.threads)
    init = load_checkpoint(args.init_from, protocol_from(args)) if args.init_from else None
    fresh = TransformerConfig() if args.architecture == "transformer" else EncoderConfig()
    model_config = init.model.config if init else fresh
    if args.architecture is not None and type(model_config) is not type(fresh):
        raise ValueError(f"--architecture {args.architecture}: the --init-from checkpoint is of another architecture")
    if args.channels is not None:
        if not isinstance(model_config, EncoderConfig):
            raise ValueError("--channels: the separable blocks' channels apply to --architecture nafp only")
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


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench eval-encoder``."""
    add_corpus_arguments(parser)
    add_grid_arguments(parser)
    add_bank_arguments(parser)
    parser.add_argument("--encoder", default="synth-default",
                        help="a checkpoint name or path (default %(default)s), a registered encoder name or a plugin "
                             "file (FILE.py or FILE.py:NAME)")
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


def run_eval(args: argparse.Namespace) -> int:
    """Build (or reuse) the query set, embed, search exhaustively and print the grid."""
    from datasets.queries.queryset import build_queryset, default_queryset_dir
    from datasets.queries.repeats import repeat_similarity, repeat_table
    from encoders.builtin.checkpoint import CheckpointEncoder, untrained_encoder
    from encoders.registry import open_encoder
    from encoders.validate import query_outcomes

    if args.max_lag_s < 0:
        raise SystemExit(f"error: --max-lag-s {args.max_lag_s}: allowed >= 0")
    set_threads(args.threads)
    corpus = corpus_from(args)
    noise, rooms = banks_from(args)
    config = config_from(args)
    out = args.out or default_queryset_dir(corpus, config, noise, rooms)
    qs = build_queryset(corpus, noise, rooms, config, out, progress=not args.no_progress)
    encoders = [open_encoder(args.encoder, corpus.protocol, args.device)]
    if args.untrained:
        if not isinstance(encoders[0], CheckpointEncoder):
            raise ValueError(f"--untrained: {args.encoder} is not a checkpoint of the built-in architecture")
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
