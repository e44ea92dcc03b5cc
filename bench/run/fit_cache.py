"""Fitted methods kept on disk, so that a resumed or repeated run does not train them again.

A learned method's fit (FlowHash's flow trained to convergence takes minutes to tens of minutes)
depends only on the method's code, its build parameters, seed and device, and the train pairs.
The harness pickles the fitted method under a digest of exactly those, in
``cache_dir("fits")``, with the seconds the fit took; a later fit of the same configuration on
the same pairs loads it and reports those seconds as its ``fit_s`` (the cost of fitting it, not
of loading it). A file lock per entry makes a second process wait for a fit in progress instead
of training the same configuration twice. A method that does not pickle, or fits in under a
second, is fitted every time.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import pickle
import time
from pathlib import Path
from typing import Iterator

from datasets.cache import atomic_write_bytes, cache_dir
from methods.base import Method, TrainData
from methods.registry import method_code_hash

log = logging.getLogger(__name__)
#: Fits quicker than this are not kept: storing a method that only keeps its train arrays (IVF's
#: training set) would cost more disk than fitting it again costs time.
MIN_KEPT_FIT_S = 1.0


def fit_key(name: str, build_params: dict, seed: int, device: str, train: TrainData) -> str:
    """The digest a fitted configuration is kept under: method code, parameters, seed, device and
    every train array."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": name, "code": method_code_hash(name), "params": build_params, "seed": seed,
                         "device": device}, sort_keys=True, default=str).encode())
    for array in (train.anchors, train.positives, train.held_anchors, train.held_positives):
        if array is not None:
            h.update(str(array.shape).encode())
            h.update(array.tobytes())
    return h.hexdigest()[:32]


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    with open(path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_fit(method: Method, name: str, build_params: dict, train: TrainData) -> tuple[Method, float, bool]:
    """``method`` fitted on ``train``, or the same configuration's fit from the cache; returns
    (the fitted method, the seconds its fit took, whether it came from the cache)."""
    path = cache_dir("fits") / f"{fit_key(name, build_params, method.seed, method.device, train)}.pkl"
    with _entry_lock(path):
        if path.exists():
            try:
                with open(path, "rb") as fh:
                    stored = pickle.load(fh)
                fitted, fit_s = stored["method"], float(stored["fit_s"])
                if type(fitted) is type(method):
                    fitted.threads = method.threads
                    return fitted, fit_s, True
            except Exception as exc:  # noqa: BLE001 - a damaged or stale entry is fitted again
                log.warning("%s: the cached fit %s does not load (%s); fitting again", name, path, exc)
        t0 = time.perf_counter()
        method.fit(train)
        fit_s = time.perf_counter() - t0
        if fit_s < MIN_KEPT_FIT_S:
            return method, fit_s, False
        try:
            payload = pickle.dumps({"method": method, "fit_s": fit_s}, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - not every method pickles; it is then fitted each time
            log.info("%s: not kept in the fit cache (%s)", name, exc)
            return method, fit_s, False
        atomic_write_bytes(path, payload)
        return method, fit_s, False
