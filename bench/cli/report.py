"""``bench report``: rebuild a run's report from its stored results, or compare several runs; and
``bench readme``: check the README's results tables against the committed runs."""
from __future__ import annotations

import argparse
from contextlib import nullcontext
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
    from datasets.folder_lock import folder_lock

    scale = [d for d in args.run_dirs if is_scale_run(d)]
    if scale:
        if len(args.run_dirs) > 1 or args.out is not None or args.latency_budget_ms is not None:
            raise ValueError(f"{scale[0]} is a scaling run (`bench scale`): its report is rebuilt alone, in its "
                             f"folder, with the budget of its config (no --out, no --latency-budget-ms)")
        from bench.report.scale_report import write_scale_report

        with folder_lock(scale[0], "run folder", quiet=True):  # not while a run writes it
            print(f"report: {write_scale_report(scale[0])}")
        return 0
    if len(args.run_dirs) == 1:
        in_place = args.out is None and args.run_dirs[0].is_dir()  # writing into the run folder: not while a run does
        with folder_lock(args.run_dirs[0], "run folder", quiet=True) if in_place else nullcontext():
            files = write_report(load_run(args.run_dirs[0]), args.out, args.latency_budget_ms)
    else:
        runs = [load_run(d) for d in args.run_dirs]
        files = write_comparison(runs, args.out or comparison_dir(args.run_dirs), args.latency_budget_ms)
    print(f"report: {files.html}\n        {files.markdown}\n        {len(files.figures) // 2} figure(s) in "
          f"{files.html.parent / 'figures'}")
    return 0


def add_readme_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench readme``: check (or rewrite) a file's results tables against their runs."""
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE",
                        help="Markdown files whose '<!-- bench-table KIND run=PATH ... -->' tables are checked "
                             "(default: README.md and every docs/*.md); run paths are relative to each file's folder")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the marked tables from their runs instead of checking them")


def run_readme(args: argparse.Namespace) -> int:
    """Exit 0 when every marked table of every document agrees with its run (or after --write), 1
    listing the differences."""
    from bench.report.readme_tables import check_tables, documents, write_tables

    files = args.files or documents(Path.cwd())
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no such file")
    failed = 0
    for file in files:
        if args.write:
            print(f"{file}: {write_tables(file)} table(s) rewritten from their runs")
            continue
        problems = check_tables(file)
        for p in problems:
            print(p)
        failed += bool(problems)
        print(f"{file}: " + (f"{len(problems)} table(s) differ from their runs" if problems
                             else "every marked table agrees with its run"))
    return 1 if failed else 0
