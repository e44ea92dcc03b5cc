"""``bench list``: the registered methods with their build grids and query sweeps."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench list``."""
    parser.add_argument("names", nargs="*", help="only these methods")


def run(args: argparse.Namespace) -> int:
    """Print each method's grid."""
    from methods.registry import load_grid, method_class, method_names

    for name in args.names or method_names():
        cls = method_class(name)
        grid = load_grid(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc}")
        print(f"  grid file: {cls.config_path()}")
        for i, b in enumerate(grid["build"]):
            print(f"  build{' (default)' if i == 0 else ''}: {b}")
        print("  query sweep: " + "; ".join(", ".join(f"{k}={v}" for k, v in q.items()) for q in grid["query"]))
    return 0
