"""Calling a method under the harness's guards: the arrays it is given are read-only views, each
call has a time limit, and any failure is reported naming the method configuration, the stage
(construct, fit, warm-up, build, search, timed search) and the query parameters.

A method (a user's plugin above all) must not change the harness's arrays: every method run
after it would search damaged data, and its results would persist in the run folder. So methods
get ``writeable = False`` views; a method that needs scratch memory copies what it changes.
"""
from __future__ import annotations

import contextlib
import faulthandler
import json
import signal
import sys
import threading
from dataclasses import replace
from typing import Iterator

import numpy as np

from methods.base import AudioDB, TrainData

#: Seconds past the limit after which a call that never returned to Python (a compiled loop
#: holding the interpreter) ends the process, with every thread's traceback on stderr.
HARD_STOP_GRACE_S = 60.0


class MethodError(RuntimeError):
    """A method configuration failed (raised, or ran past its time limit) in one stage."""


class MethodTimeout(MethodError):
    """A method call ran past the run's ``call_limit_s``."""


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that refuses writes (the array itself stays writable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def read_only_db(db: np.ndarray | AudioDB) -> np.ndarray | AudioDB:
    """The DB a method builds over, read-only (an :class:`AudioDB`'s waveforms and row maps too)."""
    if isinstance(db, AudioDB):
        return replace(db, tracks=[read_only(t) for t in db.tracks],
                       segment_rows=[read_only(r) for r in db.segment_rows])
    return read_only(db)


def read_only_train(train: TrainData) -> TrainData:
    """The train pairs a method fits on, read-only."""
    held = [None if x is None else read_only(x) for x in (train.held_anchors, train.held_positives)]
    return TrainData(read_only(train.anchors), read_only(train.positives), *held)


def describe_call(label: str, stage: str, query_params: dict | None = None, query: str | None = None) -> str:
    """``method lsh(K=16,L=1), stage search, query parameters {"radius": 1}``: how errors name a call."""
    out = f"method {label}, stage {stage}"
    if query_params is not None:
        out += f", query parameters {json.dumps(query_params, sort_keys=True)}"
    if query is not None:
        out += f", {query}"
    return out


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`MethodTimeout` (saying ``what`` ran out) when the block runs past ``seconds``.

    The limit interrupts Python code (a SIGALRM in the main thread). A call stuck in compiled code
    that never returns to the interpreter cannot be interrupted: :data:`HARD_STOP_GRACE_S` later
    the process exits with the traceback of every thread, which names the method's file and line.
    None: no limit.
    """
    if seconds is None:
        yield
        return
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def on_alarm(signum: int, frame: object) -> None:
        raise MethodTimeout(f"{what}: no return after the {seconds:g} s limit (call_limit_s in the run "
                            f"config); fix the method, or raise the limit if it is merely slow")

    old = signal.signal(signal.SIGALRM, on_alarm) if main else None
    hard_stop = True
    try:
        faulthandler.dump_traceback_later(seconds + HARD_STOP_GRACE_S, exit=True, file=sys.__stderr__)
    except (ValueError, AttributeError, OSError):  # no usable stderr: the soft limit still holds
        hard_stop = False
    if main:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        if hard_stop:
            faulthandler.cancel_dump_traceback_later()


@contextlib.contextmanager
def guarded(label: str, stage: str, limit_s: float | None, query_params: dict | None = None,
            query: str | None = None) -> Iterator[None]:
    """Run the block (calls of one method stage) under ``limit_s``; an exception it raises becomes a
    :class:`MethodError` naming the method configuration ``label``, the ``stage``, the query
    parameters, the ``query`` searched and the exception's type (and where the timing loop was, which
    ``bench.measure.timing`` adds as a note)."""
    what = describe_call(label, stage, query_params, query)
    try:
        with time_limit(limit_s, what):
            yield
    except Exception as exc:  # noqa: BLE001 - any failure of a method is reported with where it happened
        notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", []))
        if isinstance(exc, MethodError):
            if not notes:
                raise
            raise type(exc)(f"{exc}{notes}") from exc
        hint = ("; the harness's arrays are read-only: a method must copy what it changes"
                if "read-only" in str(exc) or "readonly" in str(exc) else "")
        raise MethodError(f"{what}: {type(exc).__name__}: {exc}{notes}{hint}") from exc
