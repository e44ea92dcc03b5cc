"""``bench regress``: guard FlowHash's advantage against a committed baseline."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

EXIT_REGRESSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench regress``."""
    from bench.regress.decide import DEFAULT_BASELINE
    from bench.regress.scenario import DEFAULT_SCENARIO

    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                        help="baseline JSON to compare with (default %(default)s)")
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO,
                        help="scenario YAML: run config, focus method, rivals, timing rounds and tolerances "
                             "(default bench/regress/scenario.yml)")
    parser.add_argument("--update", action="store_true",
                        help="measure and write the baseline instead of checking (needs --message)")
    parser.add_argument("-m", "--message", default=None, help="why the baseline changes (required with --update)")
    parser.add_argument("--save", type=Path, default=None, help="also write this run's measurement to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Measure the scenario, then compare with the baseline (exit 1 naming each regression) or update it."""
    from bench.regress.decide import (
        compare,
        environment_differences,
        load_baseline,
        verdict_summary,
        verdict_table,
        write_baseline,
    )
    from bench.regress.measure import measure
    from bench.regress.scenario import load_scenario
    from datasets.cache import atomic_write_json

    t0 = time.perf_counter()
    scenario = load_scenario(args.scenario)
    if args.update:
        if not (args.message or "").strip():
            raise ValueError("--update needs a message: -m 'why the baseline changes'")
        baseline = None
    else:
        baseline = load_baseline(args.baseline, scenario)  # fail fast, before the measurement
    measurement = measure(scenario, progress=not args.no_progress)
    if args.save:
        atomic_write_json(args.save, measurement.to_dict())
    if args.update:
        write_baseline(args.baseline, measurement, scenario, args.message)
        print(f"baseline written: {args.baseline} ({len(measurement.metrics)} metrics, scenario "
              f"{scenario.hash()}, {time.perf_counter() - t0:.0f} s)")
        for name, m in measurement.metrics.items():
            if not name.startswith("hit_rate"):
                print(f"  {name}: {m.value:.4g}")
        return 0
    rows = compare(baseline, measurement, scenario.tolerances)
    print(verdict_table(rows))
    made = baseline["made"]
    print(f"\nbaseline {args.baseline}: made {made.get('date')} at commit "
          f"{(made.get('git') or {}).get('commit')} ({made.get('message')!r}); scenario {scenario.hash()}; "
          f"{time.perf_counter() - t0:.0f} s")
    for line in environment_differences(made.get("environment") or {}, measurement.info.get("environment") or {}):
        print(line)
    lines, failed = verdict_summary(rows, args.baseline)
    print("\n".join(lines))
    return EXIT_REGRESSED if failed else 0
