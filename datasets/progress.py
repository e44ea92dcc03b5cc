"""Progress bars for every long loop of the suite: tqdm on a terminal, plain lines in a log.

On a terminal a bar redraws in place. When stderr is not a terminal (CI logs, ``nohup ... &``,
a pipe), a redrawn bar would flood the log with carriage returns, so each bar instead writes one
plain line at most every ``LOG_INTERVAL_S`` seconds, and one when it ends. ``disable=True``
(the commands' ``--no-progress``) hides it either way.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm as _tqdm

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file for tqdm that turns each in-place redraw into one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def tqdm(*args: Any, **kwargs: Any) -> _tqdm:
    """``tqdm.auto.tqdm`` with the same arguments; plain lines every ``LOG_INTERVAL_S`` seconds when
    stderr (or the ``file`` given) is not a terminal."""
    stream = kwargs.get("file") or sys.stderr
    if not kwargs.get("disable") and not getattr(stream, "isatty", lambda: False)():
        kwargs.update(file=_Lines(stream), mininterval=max(kwargs.get("mininterval", 0.0), LOG_INTERVAL_S),
                      maxinterval=max(kwargs.get("maxinterval", 0.0), LOG_INTERVAL_S), dynamic_ncols=False, ncols=100)
    return _tqdm(*args, **kwargs)
