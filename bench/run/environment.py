"""What a result was measured with (library versions, git commit, CPU, Python) and its thread count."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "torchaudio", "faiss-cpu", "nflows", "numpy", "scipy", "pandas", "pyarrow",
             "soundfile", "pyroomacoustics", "datasketch", "matplotlib", "pedalboard")
REPO = Path(__file__).resolve().parents[2]


def git_commit() -> dict[str, object]:
    """The repository's HEAD commit and whether the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def this_node() -> dict[str, object]:
    """The machine this process runs on: host name, CPU model, logical CPUs and architecture."""
    import socket

    return {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "arch": platform.machine()}


def node_kind(node: dict) -> str:
    """What makes latencies comparable between machines: the CPU model and architecture (hosts of
    one kind measure alike at a fixed thread count)."""
    return f"{node.get('cpu')} ({node.get('arch')})"


def environment() -> dict[str, object]:
    """Versions, commit, CPU and Python of this process."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None

    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "libraries": versions, "git": git_commit()}


def set_threads(threads: int) -> int:
    """Fix torch's (and faiss's, if loaded) thread count; 0 keeps all cores. Returns the count."""
    import torch

    n = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    return n
