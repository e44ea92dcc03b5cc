#!/usr/bin/env python3
"""Set up and run FlowHash bench with nothing but Python 3.11: ``python3 dev.py bench|test [ARGS]``.

Creates a small tools environment holding tox (``.venv-tools/``) on first use; tox then builds
the project's environment (``.tox/py311``) from pyproject.toml and runs the tox env.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".venv-tools"
ENVS = {"bench": "bench", "test": "tests", "tests": "tests", "regress": "regress"}


def tox_executable() -> Path:
    """Path to tox in the tools environment, installing it on first use."""
    bindir = TOOLS / ("Scripts" if os.name == "nt" else "bin")
    tox = bindir / "tox"
    if not tox.exists():
        print(f"dev.py: creating {TOOLS.name}/ with tox (first run only)", flush=True)
        venv.EnvBuilder(with_pip=True).create(TOOLS)
        subprocess.check_call([str(bindir / "python"), "-m", "pip", "install", "-q", "tox>=4.11,<5"])
    return tox


def main(argv: list[str]) -> int:
    """Run the tox env named by ``argv[0]`` with the remaining arguments passed through."""
    if sys.version_info < (3, 11):
        print(f"dev.py: Python >= 3.11 is required, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ENVS:
        print(f"usage: python3 dev.py {{{','.join(ENVS)}}} [ARGS...]\n"
              "  bench    run the main job on the embedded default data\n"
              "  test     run the test suite\n"
              "  regress  the CI speedup check against reports/baselines/ci.json\n"
              "ARGS go to the underlying command (python -m bench ... or pytest).", file=sys.stderr)
        return 2
    cmd = [str(tox_executable()), "-e", ENVS[argv[0]]]
    if argv[1:]:
        cmd += ["--", *argv[1:]]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
