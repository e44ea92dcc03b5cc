"""``bench report``: rebuild a run's report from its stored results, or compare several runs."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench report``."""
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folder(s) written by `bench run`; two or more give a comparison report "
                             "(the first is the baseline)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the run folder for one run, reports/compare-<hash>/ for "
                             "several)")
    parser.add_argument("--latency-budget-ms", type=float, default=None, metavar="MS",
                        help="latency budget of the operating points (default: 2x the exhaustive reference's "
                             "mean latency)")


def run(args: argparse.Namespace) -> int:
    """Load the run folder(s), write the report, print where it is."""
    from bench.report.compare import comparison_dir, write_comparison
    from bench.report.data import load_run
    from bench.report.run_report import write_report

    runs = [load_run(d) for d in args.run_dirs]
    if len(runs) == 1:
        files = write_report(runs[0], args.out, args.latency_budget_ms)
    else:
        files = write_comparison(runs, args.out or comparison_dir(args.run_dirs), args.latency_budget_ms)
    print(f"report: {files.html}\n        {files.markdown}\n        {len(files.figures) // 2} figure(s) in "
          f"{files.html.parent / 'figures'}")
    return 0
