"""Per-stage latency counters a method's search marks and the harness reads.

A method calls ``self.clock.lap("hash")`` when a stage of its search ends; the time since the
previous mark (or since ``Method.search`` started the call) is added to that stage. The clock
is off unless the harness turns it on (``bench/measure/timing.py``), and then costs two
``perf_counter_ns`` calls a stage. ``Method.search`` itself marks ``checks`` (its input
validation) and ``rest`` (whatever the method's last mark left unnamed).
"""
from __future__ import annotations

from time import perf_counter_ns


class StageClock:
    """Accumulated nanoseconds and call counts per named stage."""

    __slots__ = ("enabled", "totals", "calls", "_last")

    def __init__(self) -> None:
        """A clock that is off and empty."""
        self.enabled = False
        self.totals: dict[str, int] = {}
        self.calls = 0
        self._last = 0

    def reset(self) -> None:
        """Forget the accumulated totals."""
        self.totals = {}
        self.calls = 0

    def start(self) -> None:
        """Begin one search call: the next lap counts from now."""
        if self.enabled:
            self.calls += 1
            self._last = perf_counter_ns()

    def lap(self, stage: str) -> None:
        """End ``stage``: add the time since the previous mark to it."""
        if self.enabled:
            now = perf_counter_ns()
            self.totals[stage] = self.totals.get(stage, 0) + now - self._last
            self._last = now

    def mean_seconds(self) -> dict[str, float]:
        """Seconds per call of each stage, averaged over the calls since ``reset``."""
        return {stage: total / 1e9 / max(1, self.calls) for stage, total in self.totals.items()}
