"""Command-line options shared by several subcommands, and their conversion to objects."""
from __future__ import annotations

import argparse

from datasets.corpora.corpus import Corpus
from datasets.corpora.fma import FMA_SIZES
from datasets.corpora.registry import CORPORA, open_corpus
from datasets.protocol import Protocol
from datasets.queries.conditions import parse_duration, parse_reverb, parse_snr


def checked(parse):
    """Wrap a parser so argparse reports its ValueError text as the option's error."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__.replace("parse_", "")
    return convert


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """--sample-rate, --segment, --hop."""
    g = parser.add_argument_group("protocol")
    g.add_argument("--sample-rate", type=int, default=Protocol.sample_rate, help="Hz (default %(default)s)")
    g.add_argument("--segment", type=float, default=Protocol.segment_s,
                   help="DB segment length, s (default %(default)s)")
    g.add_argument("--hop", type=float, default=Protocol.hop_s, help="DB segment hop, s (default %(default)s)")


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """--corpus and the options of each corpus."""
    g = parser.add_argument_group("corpus")
    g.add_argument("--corpus", choices=CORPORA, default="synth",
                   help="which corpus (default %(default)s: synthesised music, no download)")
    g.add_argument("--corpus-path", default=None,
                   help="folder of the corpus: audio tree for 'folder', FMA root for 'fma', "
                        "cache of extracted packages for 'debian-music'")
    g.add_argument("--fma-size", choices=FMA_SIZES, default="small", help="FMA subset (default %(default)s)")
    g.add_argument("--synth-tracks", type=int, default=None, help="number of synth tracks (default 80)")
    g.add_argument("--synth-seed", type=int, default=0, help="seed of the synth corpus (default %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def protocol_from(args: argparse.Namespace) -> Protocol:
    """The Protocol the options describe."""
    return Protocol(sample_rate=args.sample_rate, segment_s=args.segment, hop_s=args.hop)


def corpus_from(args: argparse.Namespace) -> Corpus:
    """Open the corpus the options name."""
    return open_corpus(args.corpus, protocol_from(args), path=args.corpus_path, fma_size=args.fma_size,
                       synth_tracks=args.synth_tracks, synth_seed=args.synth_seed,
                       progress=not args.no_progress)


DURATION = checked(parse_duration)
SNR = checked(parse_snr)
REVERB = checked(parse_reverb)


def add_bank_arguments(parser: argparse.ArgumentParser) -> None:
    """--noise and --rooms."""
    g = parser.add_argument_group("noise and rooms")
    g.add_argument("--noise", default="synth",
                   help="'synth' (synthetic noise), 'debian' (real ambience from Debian game packages, "
                        "fetched with apt on first use), a folder of noise recordings, or several joined "
                        "by '+' such as 'synth+debian' (default %(default)s)")
    g.add_argument("--rooms", default="simulated",
                   help="'simulated' or a folder of measured RIRs (default %(default)s)")


def banks_from(args: argparse.Namespace):
    """The noise bank and room bank the options name."""
    from datasets.noise.registry import open_noise_bank
    from datasets.rooms import open_room_bank

    protocol = protocol_from(args)
    progress = not getattr(args, "no_progress", False)
    return open_noise_bank(args.noise, protocol, progress), open_room_bank(args.rooms, protocol, progress)


def add_device_arguments(parser: argparse.ArgumentParser, default_threads: int = 1) -> None:
    """--device and --threads."""
    g = parser.add_argument_group("compute")
    g.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    g.add_argument("--threads", type=int, default=default_threads,
                   help="torch/faiss threads (0 = all cores; default %(default)s)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --ray-address, --ray-cpus, --mix-nodes, --node-kind."""
    g = parser.add_argument_group("engine (docs/distributed.md)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process; ray: Ray workers (pip install -e '.[ray]')")
    g.add_argument("--ray-address", default=None,
                   help="the Ray cluster to use ('auto', HOST:6379, ray://HOST:10001; default: $RAY_ADDRESS, "
                        "else a local instance started for this command)")
    g.add_argument("--ray-cpus", type=int, default=None,
                   help="CPUs of the local Ray instance started without --ray-address (default: all)")
    g.add_argument("--mix-nodes", action="store_true",
                   help="let results come from nodes of different kinds (CPU model, architecture); without it "
                        "Ray tasks are pinned to one kind and a run mixing kinds is refused")
    g.add_argument("--ray-reserve-cpus", type=int, default=None, metavar="N",
                   help="with --engine ray: CPUs each method task reserves, at least its --threads (default: "
                        "its threads); the node's whole CPU count runs one task per node, so no timing shares "
                        "the node with another")
    g.add_argument("--node-kind", default=None,
                   help="with --engine ray: the node kind to measure on (default: the kind with the most CPUs)")


def executor_from(args: argparse.Namespace):
    """The executor the engine options name (``bench.run.executor``); connects to Ray for ``ray``."""
    if args.engine == "local":
        if args.ray_address or args.ray_cpus or args.node_kind or args.ray_reserve_cpus:
            raise ValueError("--ray-address, --ray-cpus, --ray-reserve-cpus and --node-kind need --engine ray")
        from bench.run.executor import LocalExecutor

        return LocalExecutor()
    for option in ("ray_cpus", "ray_reserve_cpus"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} {getattr(args, option)}: allowed >= 1")
    from bench.distributed.executor import RayExecutor

    return RayExecutor(args.ray_address, args.ray_cpus, mix_nodes=args.mix_nodes, node_kind=args.node_kind,
                       reserve_cpus=args.ray_reserve_cpus)
