"""Progress bars write plain lines, not carriage-return redraws, when their stream is not a terminal."""
from __future__ import annotations

import io

from datasets import progress


def test_a_bar_in_a_log_writes_a_few_plain_lines(monkeypatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)
    for _ in progress.tqdm(range(50_000), desc="work", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("work: 100%")


def test_a_disabled_bar_writes_nothing() -> None:
    log = io.StringIO()
    for _ in progress.tqdm(range(10), desc="work", file=log, disable=True):
        pass
    assert log.getvalue() == ""
