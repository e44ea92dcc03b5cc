"""``bench list``: the registered methods with their build grids and query sweeps, or (``--encoders``)
the registered encoders and the shipped checkpoints."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench list``."""
    parser.add_argument("names", nargs="*", help="only these methods")
    parser.add_argument("--plugin", action="append", type=Path, default=[], metavar="FILE",
                        help="also load the methods a Python module file registers (repeatable)")
    parser.add_argument("--encoders", action="store_true",
                        help="list the registered encoders and the shipped checkpoints instead "
                             "(docs/adding-an-encoder.md)")


def run(args: argparse.Namespace) -> int:
    """Print each method's grid, or the encoders."""
    from methods.registry import load_grid, load_plugin, method_class, method_names, plugin_methods

    if args.encoders:
        return _list_encoders()

    for plugin in args.plugin:
        load_plugin(plugin)
    origins = plugin_methods()
    for name in args.names or method_names():
        cls = method_class(name)
        grid = load_grid(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc}")
        if name in origins:
            print(f"  from: {origins[name]}")
        if cls.input_kind != "embedding":
            print(f"  input: {cls.input_kind} (not the encoder's embeddings)")
        print(f"  grid file: {cls.config_path()}")
        print(f"  build parameters (defaults): {cls.build_defaults or 'none'}")
        for i, b in enumerate(grid["build"]):
            print(f"  build{' (default)' if i == 0 else ''}: {b}")
        print("  query sweep: " + "; ".join(", ".join(f"{k}={v}" for k, v in q.items()) for q in grid["query"]))
    return 0



def _list_encoders() -> int:
    from encoders.builtin.checkpoint import SHIPPED_DIR, load_checkpoint
    from encoders.registry import ENCODERS, encoder_names

    for name in encoder_names():
        cls = ENCODERS[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc} ({cls.__module__}.{cls.__qualname__})")
    print("shipped checkpoints (encoder: NAME):")
    for path in sorted(SHIPPED_DIR.glob("*.pt")):
        encoder = load_checkpoint(path)
        print(f"  {path.stem}: {encoder.identity['architecture']}, dim {encoder.dim}, "
              f"{encoder.model.n_parameters():,} parameters, sha256 {encoder.sha256[:12]}")
    return 0

