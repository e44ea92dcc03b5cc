"""Peak memory of a piece of work: the process's anonymous resident memory, sampled in a thread.

Anonymous memory (``RssAnon`` in ``/proc/self/status``) is what the process allocated itself:
NumPy arrays, faiss and torch buffers. Pages of a memory-mapped file (the embedding store the
DB rows are read from) are file-backed and not counted, so a method that only reads the DB is
not charged for it, while one that copies it is. Elsewhere than Linux the sampler falls back
to the peak RSS of the whole process life (``resource.getrusage``), which it says.
"""
from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path

STATUS = Path("/proc/self/status")


def anon_rss_bytes() -> int | None:
    """Current anonymous resident memory of this process in bytes (None where /proc is missing)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """Context manager: ``peak_bytes`` is the highest anonymous RSS seen while inside, minus the
    level on entry (``baseline_bytes``), sampled every ``interval_s`` (and on entry and exit)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.source = "RssAnon" if anon_rss_bytes() is not None else "ru_maxrss"
        self._stop = threading.Event()
        self._high = 0
        self._thread: threading.Thread | None = None

    def _now(self) -> int:
        value = anon_rss_bytes()
        if value is None:
            scale = 1 if sys.platform == "darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        return value

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._high = max(self._high, self._now())

    def __enter__(self) -> "PeakMemory":
        self.baseline_bytes = self._now()
        self._high = self.baseline_bytes
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._high = max(self._high, self._now())
        self.peak_bytes = max(0, self._high - self.baseline_bytes)

