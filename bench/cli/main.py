"""``python -m bench``: the command-line interface; each subcommand lives in its own module."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from bench import __version__

from . import corpus as cmd_corpus
from . import embed as cmd_embed
from . import encoder as cmd_encoder
from . import export as cmd_export
from . import list as cmd_list
from . import queries as cmd_queries
from . import regress as cmd_regress
from . import report as cmd_report
from . import run as cmd_run
from . import scale as cmd_scale

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run the benchmark: build each method's index, sweep its query parameters, record "
            "accuracy, work, latency and bucket balance", cmd_run.add_arguments, cmd_run.run),
    "scale": ("the scaling run: grow the DB by distractors over a grid of sizes with the query set fixed, and "
              "report each method's latency, candidates, hit rate, build time and memory against N",
              cmd_scale.add_arguments, cmd_scale.run),
    "report": ("rebuild a run's report (report.md, report.html, figures) from its stored results, or compare "
               "several runs", cmd_report.add_arguments, cmd_report.run),
    "regress": ("check FlowHash's speedups, hit rates and bucket balance against the committed baseline "
                "(exit 1 naming any regression), or --update it", cmd_regress.add_arguments, cmd_regress.run),
    "readme": ("check that the results tables of the README and docs/ agree number for number with the "
               "committed runs they name (or --write them)", cmd_report.add_readme_arguments, cmd_report.run_readme),
    "list": ("list search methods with their build grids and query sweeps", cmd_list.add_arguments, cmd_list.run),
    "queries": ("build a standardized degraded query set (manifest, audio, DB segments, hash)",
                cmd_queries.add_arguments, cmd_queries.run),
    "train-encoder": ("train the fingerprint encoder contrastively (NT-Xent) on a corpus's train split",
                      cmd_encoder.add_train_arguments, cmd_encoder.run_train),
    "embed": ("embed a corpus's DB segments with an encoder and print throughput",
              cmd_embed.add_arguments, cmd_embed.run),
    "eval-encoder": ("an encoder's top-1 hit rate over a query grid under exact search",
                     cmd_encoder.add_eval_arguments, cmd_encoder.run_eval),
    "export-audio": ("write the audio a run embeds (DB tracks, degraded queries, train pairs) with the ids of every "
                     "row, for an outside encoder whose vectors `--encoder precomputed:DIR` reads back",
                     cmd_export.add_audio_arguments, cmd_export.run_audio),
    "export": ("write a finished run's vectors with their exact neighbours in ann-benchmarks' HDF5 or "
               "VectorDBBench's Parquet layout", cmd_export.add_arguments, cmd_export.run),
    "corpus": ("describe a corpus: tracks per split, hours, skipped files (fetches debian-music)",
               cmd_corpus.add_arguments, cmd_corpus.run),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="FlowHash bench: how fast and how accurately does each search method find a "
                    "short, noisy, reverberant audio query in a database of fingerprints?")
    parser.add_argument("--version", action="version", version=f"flowhash-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; user errors (``datasets.errors.UserError``, ValueError,
    OSError) print one clear line and exit 2; anything else is a bug and keeps its traceback."""
    from datasets.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    _, _, run = COMMANDS[args.command]
    try:
        return run(args)
    except (ValueError, OSError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
