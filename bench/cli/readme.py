"""``bench readme``: check (or rewrite) the results tables of a Markdown file against the committed runs they name."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench readme``."""
    parser.add_argument("file", nargs="?", type=Path, default=Path("README.md"),
                        help="Markdown file whose '<!-- bench-table KIND run=PATH ... -->' tables are checked "
                             "(default %(default)s); run paths are relative to the file's folder")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the marked tables from their runs instead of checking them")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every marked table agrees with its run (or after --write), 1 listing the differences."""
    from bench.report.readme_tables import check_tables, write_tables

    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    if args.write:
        print(f"{args.file}: {write_tables(args.file)} table(s) rewritten from their runs")
        return 0
    problems = check_tables(args.file)
    for p in problems:
        print(p)
    print(f"{args.file}: " + (f"{len(problems)} table(s) differ from their runs" if problems
                              else "every marked table agrees with its run"))
    return 1 if problems else 0
