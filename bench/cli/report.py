"""``bench report``: rebuild a run's report from its stored results, or compare several runs."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench report``."""
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folder(s) written by `bench run`; two or more give a comparison report "
                             "(the first is the baseline). A folder of `bench scale` has its scaling report "
                             "rebuilt")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the run folder for one run, reports/compare-<hash>/ for "
                             "several)")
    parser.add_argument("--latency-budget-ms", type=float, default=None, metavar="MS",
                        help="latency budget of the operating points (default: 2x the exhaustive reference's "
                             "mean latency)")


def is_scale_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a scaling run (its run.json says ``"kind": "scale"``)."""
    import json

    try:
        return json.loads((Path(run_dir) / "run.json").read_text()).get("kind") == "scale"
    except (OSError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    """Load the run folder(s), write the report, print where it is."""
    from bench.report.compare import comparison_dir, write_comparison
    from bench.report.data import load_run
    from bench.report.run_report import write_report

    scale = [d for d in args.run_dirs if is_scale_run(d)]
    if scale:
        if len(args.run_dirs) > 1 or args.out is not None or args.latency_budget_ms is not None:
            raise ValueError(f"{scale[0]} is a scaling run (`bench scale`): its report is rebuilt alone, in its "
                             f"folder, with the budget of its config (no --out, no --latency-budget-ms)")
        from bench.report.scale_report import write_scale_report

        print(f"report: {write_scale_report(scale[0])}")
        return 0
    runs = [load_run(d) for d in args.run_dirs]
    if len(runs) == 1:
        files = write_report(runs[0], args.out, args.latency_budget_ms)
    else:
        files = write_comparison(runs, args.out or comparison_dir(args.run_dirs), args.latency_budget_ms)
    print(f"report: {files.html}\n        {files.markdown}\n        {len(files.figures) // 2} figure(s) in "
          f"{files.html.parent / 'figures'}")
    return 0
