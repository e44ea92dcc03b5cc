#!/usr/bin/env python3
"""Set up and run FlowHash bench with nothing but Python 3.11: ``python3 dev.py bench|test|regress|lint [ARGS]``.

Creates a small tools environment holding tox (``.venv-tools/``) on first use; tox then builds
the project's one environment (``.tox/py311``) from pyproject.toml and runs the command in it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".venv-tools"
ENV = "py311"
# free disk the first install of .tox/py311 passes through (measured: 6.1 GB kept, about 8.2 GB at its peak)
INSTALL_BYTES = 8 * 1024**3
# the command each verb runs in the environment; None: the tox env's own command (pytest)
COMMANDS: dict[str, list[str] | None] = {
    "bench": ["python", "-m", "bench", "run", "--method", "flowhash", "--distractors", "20000"],
    "test": None,
    "tests": None,
    "regress": ["python", "-m", "bench", "regress"],
    "lint": ["ruff", "check", "."],  # the rules in pyproject.toml, [tool.ruff.lint]
}


def tox_executable() -> Path:
    """Path to tox in the tools environment, installing it on first use."""
    bindir = TOOLS / ("Scripts" if os.name == "nt" else "bin")
    tox = bindir / "tox"
    if not tox.exists():
        print(f"dev.py: creating {TOOLS.name}/ with tox (first run only)", flush=True)
        venv.EnvBuilder(with_pip=True).create(TOOLS)
        subprocess.check_call([str(bindir / "python"), "-m", "pip", "install", "-q", "tox>=4.11,<5"])
    return tox


def disk_warning(root: Path = ROOT, need: int = INSTALL_BYTES) -> str | None:
    """A warning when the project's environment is not built yet and ``root``'s disk has less than ``need`` free."""
    if (root / ".tox" / ENV).exists():
        return None
    free = shutil.disk_usage(root).free
    if free >= need:
        return None
    return (f"dev.py: warning: {free / 1024**3:.1f} GB free on the disk of {root}; building .tox/{ENV} "
            f"(torch's CUDA wheel from PyPI among it) passes through about {need / 1024**3:.0f} GB, "
            "and pip stops with 'No space left on device' when it runs out")


def main(argv: list[str]) -> int:
    """Run the verb ``argv[0]`` in the project's environment, passing the remaining arguments through."""
    if sys.version_info < (3, 11):
        print(f"dev.py: Python >= 3.11 is required, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python3 dev.py {{{','.join(COMMANDS)}}} [ARGS...]\n"
              "  bench    run the main job on the embedded default data\n"
              "  test     run the test suite\n"
              "  regress  the CI speedup check against reports/baselines/ci.json\n"
              "  lint     ruff over the repository (the rules in pyproject.toml)\n"
              "ARGS go to the underlying command (python -m bench ... or pytest).", file=sys.stderr)
        return 2
    command = COMMANDS[argv[0]]
    if warning := disk_warning():
        print(warning, file=sys.stderr, flush=True)
    if command is None:
        cmd = [str(tox_executable()), "-e", ENV]
        if argv[1:]:
            cmd += ["--", *argv[1:]]
    else:
        setup = subprocess.call([str(tox_executable()), "-e", ENV, "--notest", "-q"], cwd=ROOT)
        if setup != 0:
            return setup
        cmd = [str(tox_executable()), "exec", "-e", ENV, "-q", "--", *command, *argv[1:]]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
