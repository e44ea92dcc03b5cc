"""An on-disk embedding store: one memory-mapped ``.npy`` matrix, written in chunks of whole
tracks, resumable after an interruption.

Layout of a store folder:

- ``rows.npy``: float32 [n_rows, dim], preallocated; row i is the embedding of index row i;
- ``index.parquet``: the segment table (``source``, ``track_id``, ``segment``), in row order;
- ``state.json``: the store's key, shape and the chunks written so far, each with its row range
  and a CRC-32 of its bytes. A chunk enters ``state.json`` (written atomically) only after its
  rows are flushed to disk, so a run killed at any point leaves no chunk that claims rows it
  did not finish: the next run starts again after the last committed chunk.

Reading a finished store (:func:`open_store`) maps ``rows.npy`` read-only: slices of it are
NumPy arrays backed by the page cache, so a DB of a million rows is never held in RAM twice.

One writer at a time: :func:`fill_store` holds the folder's lock (:mod:`datasets.folder_lock`)
while it writes. Worker processes die with the process that started them, however it ends.
"""
from __future__ import annotations

import ctypes
import itertools
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from datasets.cache import atomic_write_json, atomic_write_parquet, flat_differences
from datasets.corpora.corpus import Corpus
from datasets.errors import UserError
from datasets.folder_lock import folder_lock
from datasets.progress import tqdm

from .embed import (
    BATCH_SIZE,
    Job,
    TrackStream,
    _check_finite,
    cut_segments,
    decoded_tracks,
    embed_segments,
    encoder_label,
    load_checked,
    track_label,
)
from .interface import Encoder

ROWS = "rows.npy"
INDEX = "index.parquet"
STATE = "state.json"
INDEX_COLUMNS = ("source", "track_id", "segment")
CHUNK_ROWS = 50_000


class StoreError(UserError, RuntimeError):
    """A store folder that cannot be used as asked (another key, a damaged chunk, unfinished)."""


@dataclass
class EmbeddingStore:
    """A finished store: its rows (read-only memory map), index and state."""

    root: Path
    rows: np.ndarray
    index: pd.DataFrame
    state: dict

    def __len__(self) -> int:
        return len(self.index)

    def __reduce__(self):
        # another process (a Ray worker) maps the finished store from its path instead of receiving its rows
        return open_store, (self.root, self.state.get("key"))


def _crc(block: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(block)).cast("B"))


def _read_state(root: Path) -> dict | None:
    try:
        return json.loads((root / STATE).read_text())
    except (OSError, ValueError):
        return None


def _map_rows(root: Path, state: dict, mode: str) -> np.ndarray:
    """``rows.npy`` memory-mapped; a file missing, cut short or of another shape raises StoreError
    naming it (checked before mapping: NumPy would silently extend a short file mapped ``r+``)."""
    path = root / ROWS
    need = state["n_rows"] * state["dim"] * np.dtype(np.float32).itemsize
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            read_header(f)
            need += f.tell()
        size = path.stat().st_size
        if size < need:
            raise StoreError(f"{path} is shorter than its state says ({size} bytes, {need} expected for "
                             f"{state['n_rows']} rows of {state['dim']}): the store is damaged; remove the folder "
                             f"{root} to embed again")
        rows = np.load(path, mmap_mode=mode)
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} cannot be read ({type(exc).__name__}: {exc}): the store is damaged; remove the "
                         f"folder {root} to embed again") from None
    if rows.shape != (state["n_rows"], state["dim"]):
        raise StoreError(f"{path} has shape {rows.shape}, its state says ({state['n_rows']}, {state['dim']}): the "
                         f"store is damaged; remove the folder {root} to embed again")
    return rows


def _verify(root: Path, rows: np.ndarray, chunks: list[dict], progress: bool) -> None:
    """Check every chunk's CRC (reading each row from disk once), raising StoreError at the first
    mismatch; with ``progress``, report on stderr what was checked and how long it took."""
    t0 = time.perf_counter()
    for chunk in chunks:
        if _crc(rows[chunk["start"]:chunk["stop"]]) != chunk["crc32"]:
            raise StoreError(f"{root}: rows {chunk['start']}..{chunk['stop']} do not match their CRC (altered or "
                             f"damaged on disk); remove the folder {root} to embed again")
    n = sum(chunk["stop"] - chunk["start"] for chunk in chunks)
    if progress and n:
        print(f"{root}: checked the CRCs of {n} rows ({n * rows.shape[1] * rows.itemsize / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.2f} s", file=sys.stderr)


def open_store(root: Path | str, key: str | None = None, verify: bool = False,
               progress: bool = False) -> EmbeddingStore:
    """A finished store, its rows memory-mapped read-only; with ``key``, it must have been written
    for that key; with ``verify``, every chunk's CRC is checked (reported on stderr with
    ``progress``). Raises :class:`StoreError`."""
    root = Path(root)
    state = _read_state(root)
    if state is None:
        raise StoreError(f"{root}: no embedding store here ({STATE} missing or unreadable)")
    if key is not None and state.get("key") != key:
        raise StoreError(f"{root}: store written for key {state.get('key')}, asked for {key}")
    if not state.get("complete"):
        raise StoreError(f"{root}: store unfinished ({state.get('rows_done', 0)} of {state.get('n_rows')} rows); "
                         f"run the embedding again to resume it")
    rows = _map_rows(root, state, "r")
    if verify:
        _verify(root, rows, state["chunks"], progress)
    return EmbeddingStore(root, rows, pd.read_parquet(root / INDEX), state)


def chunk_bounds(index: pd.DataFrame, chunk_rows: int = CHUNK_ROWS) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of about ``chunk_rows`` rows each, cut only between tracks
    (a track's rows must be contiguous in the index)."""
    keys = (index["source"].astype(str) + "\0" + index["track_id"].astype(str)).to_numpy()
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64) if len(index) else np.zeros(0, np.int64)
    if len(set(keys[starts])) != len(starts):
        raise ValueError("the index's rows of a track must be contiguous")
    bounds, start = [], 0
    for s in list(starts[1:]) + [len(index)]:
        if s - start >= chunk_rows or s == len(index):
            if s > start:
                bounds.append((start, int(s)))
            start = int(s)
    return bounds


#: How much shorter than its header says a decoded track may be (Opus pre-skip, an MP3 header's estimate):
#: up to this, the missing tail of the last segment is zeros; beyond it, the track is an error.
MAX_SHORTFALL_S = 2.0


def track_rows(audio: np.ndarray, protocol, seg_no: np.ndarray, source: str) -> np.ndarray:
    """The segments ``seg_no`` of one decoded track, cut on the protocol's hop grid. A track whose
    decoded audio falls short of its last segment by at most :data:`MAX_SHORTFALL_S` is padded
    with zeros; a larger shortfall raises StoreError naming ``source``."""
    need = int(seg_no.max()) * protocol.hop_samples + protocol.segment_samples
    if len(audio) < need:
        short = (need - len(audio)) / protocol.sample_rate
        if short > MAX_SHORTFALL_S:
            raise StoreError(f"{source}: decodes to {len(audio) / protocol.sample_rate:.2f} s, {short:.2f} s short "
                             f"of its segment {int(seg_no.max())}")
        audio = np.concatenate([audio, np.zeros(need - len(audio), dtype=np.float32)])
    return cut_segments(audio, protocol, int(seg_no.max()) + 1)[seg_no]


_WORKER: dict = {}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent_pid: int) -> None:
    """End this process when ``parent_pid`` ends (at once if it already has): a worker left behind
    by a killed parent would hold its memory, and multiprocessing's resource tracker, forever."""
    armed = False
    if sys.platform.startswith("linux"):
        # the signal comes when the thread that started this process ends; the pool is started and
        # resized only from the thread that iterates the stream, which outlives it
        armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_init(encoder: Encoder, sources: Mapping[str, Corpus], batch_size: int, parent_pid: int) -> None:
    _die_with(parent_pid)
    torch.set_num_threads(1)
    _WORKER.update(encoder=encoder, sources=sources, batch_size=batch_size)


def _worker_embed(job: Job) -> np.ndarray:
    source, track_id, seg_no = job
    corpus = _WORKER["sources"][source]
    segs = track_rows(load_checked(corpus, track_id), corpus.protocol, seg_no, track_label(corpus, track_id))
    return embed_segments(_WORKER["encoder"], segs, _WORKER["batch_size"])


def process_stream(encoder: Encoder, sources: Mapping[str, Corpus], workers: int,
                   batch_size: int = BATCH_SIZE) -> TrackStream:
    """A :data:`~encoders.embed.TrackStream` over ``workers`` spawned processes of one torch thread
    each; ``4 * workers`` tracks stay in flight across chunk boundaries, so that no worker idles
    while a long track ends a chunk. The workers die with this process, however it ends."""

    def stream(jobs: list[Job]) -> Iterator[np.ndarray]:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(encoder, dict(sources), batch_size, os.getpid())) as pool:
            pending: deque = deque()
            upcoming = iter(jobs)
            try:
                for job in itertools.islice(upcoming, 4 * workers):
                    pending.append(pool.submit(_worker_embed, job))
                while pending:
                    out = pending.popleft().result()
                    job = next(upcoming, None)
                    if job is not None:
                        pending.append(pool.submit(_worker_embed, job))
                    yield out
            finally:
                pool.shutdown(cancel_futures=True)

    return stream


def _track_jobs(index: pd.DataFrame, start: int, stop: int) -> list[Job]:
    part = index.iloc[start:stop]
    segs = part["segment"].to_numpy()
    jobs = []
    for (source, track_id), idx in part.groupby(["source", "track_id"], sort=False).indices.items():
        jobs.append((str(source), str(track_id), segs[np.sort(idx)]))
    return jobs


def _embed_chunk_inline(encoder: Encoder, sources: Mapping[str, Corpus], jobs: list, batch_size: int,
                        bar) -> Iterator[np.ndarray]:
    for source, run in itertools.groupby(jobs, key=lambda job: job[0]):  # each run decoded a track ahead
        corpus, run = sources[source], list(run)
        for (_, track_id, seg_no), (_, audio) in zip(run, decoded_tracks(corpus, [t for _, t, _ in run])):
            segs = track_rows(audio, corpus.protocol, seg_no, track_label(corpus, track_id))
            out = embed_segments(encoder, segs, batch_size)
            bar.update(len(out))
            yield out


def _check_key(root: Path, state: dict | None, key: str, identity: dict | None) -> None:
    if state is None or state.get("key") == key:
        return
    old = state.get("identity")
    differing = (", ".join(flat_differences(old, identity)) if old is not None and identity is not None else
                 "unknown: its state.json records no identity" if old is None else "unknown")
    raise StoreError(f"{root}: holds a store for key {state.get('key')}, not {key} (differing: {differing}); a store "
                     f"holds the rows of one corpus, segment table, protocol and encoder: remove the folder to embed "
                     f"again, or choose another folder")


def fill_store(root: Path | str, key: str, index: pd.DataFrame, sources: Mapping[str, Corpus], encoder: Encoder,
               progress: bool = True, workers: int = 1, chunk_rows: int = CHUNK_ROWS,
               batch_size: int = BATCH_SIZE, head: np.ndarray | None = None,
               stream: TrackStream | None = None, identity: dict | None = None) -> EmbeddingStore:
    """Embed every row of ``index`` (columns ``source``, ``track_id``, ``segment``; ``source``
    names a corpus of ``sources``) into the store at ``root``, and return it opened.

    A store already finished for ``key`` is opened after every chunk's CRC is checked (with
    ``progress``, a line on stderr says how many rows and how long); one begun for ``key``
    resumes after its last committed chunk (whose CRCs are checked first); one for another key
    is refused, naming what differs between its ``identity`` (what the key hashes: recorded in
    ``state.json``) and this one. The folder's lock is held while rows are written: a second
    writer is refused (:class:`~datasets.folder_lock.FolderBusyError`, naming the holder).
    ``workers`` > 1 embeds tracks in that many processes of one torch thread each (each decodes
    its own tracks); 1 embeds here, decoding a track ahead in a thread. ``stream``, when given,
    embeds the tracks instead (e.g. :func:`encoders.ray_embed.ray_stream` on Ray workers); the
    rows land in the same store, committed chunk by chunk as here. ``head``, when given,
    holds the embeddings of the first ``len(head)`` rows, already computed: they are copied in as
    the first chunk (the key must cover them).
    """
    root = Path(root)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"index lacks column(s) {missing}; it needs {list(INDEX_COLUMNS)}")
    unknown = sorted(set(index["source"].astype(str)) - set(sources))
    if unknown:
        raise ValueError(f"index names source(s) {unknown} that are not among {sorted(sources)}")
    index = index[list(INDEX_COLUMNS)].reset_index(drop=True)
    dim = encoder.dim
    identity = None if identity is None else json.loads(json.dumps(identity))  # as state.json holds it
    state = _read_state(root)
    _check_key(root, state, key, identity)  # before the lock, so that a refused folder is left untouched
    if state is not None and state.get("complete"):
        return open_store(root, key, verify=True, progress=progress)
    n_head = 0 if head is None else len(head)
    if head is not None and (head.shape[1] != dim or n_head > len(index)):
        raise ValueError(f"head has shape {head.shape}; expected at most {len(index)} rows of {dim}")
    with folder_lock(root, "embedding store"):
        state = _read_state(root)  # as the last writer left it
        _check_key(root, state, key, identity)
        if state is not None and state.get("complete"):
            return open_store(root, key, verify=True, progress=progress)
        _fill_locked(root, key, identity, state, index, sources, encoder, progress, workers, chunk_rows, batch_size,
                     head, stream)
    return open_store(root, key)


def _fill_locked(root: Path, key: str, identity: dict | None, state: dict | None, index: pd.DataFrame,
                 sources: Mapping[str, Corpus], encoder: Encoder, progress: bool, workers: int, chunk_rows: int,
                 batch_size: int, head: np.ndarray | None, stream: TrackStream | None) -> None:
    dim = encoder.dim
    n_head = 0 if head is None else len(head)
    if state is None or not (root / ROWS).is_file():
        root.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(root / ROWS, mode="w+", dtype=np.float32, shape=(len(index), dim)).flush()
        atomic_write_parquet(root / INDEX, index)
        state = {"key": key, "n_rows": len(index), "dim": dim, "rows_done": 0, "chunks": [], "complete": False,
                 "encoder_sha256": encoder.sha256, "identity": identity}
        atomic_write_json(root / STATE, state)
    if state.get("identity") is None:
        state["identity"] = identity  # a store begun before identities were recorded: saved with its next chunk
    rows = _map_rows(root, state, "r+")
    _verify(root, rows, state["chunks"], progress)  # committed chunks must still be what was written
    # chunks cut afresh from the first row not yet committed, so that a run resumed with another
    # chunk size (a local run finished on Ray) neither skips nor repeats rows
    start = max(n_head, state["rows_done"])
    todo = (([(0, n_head)] if state["rows_done"] < n_head else [])
            + [(a + start, b + start) for a, b in chunk_bounds(index.iloc[start:], chunk_rows)])
    bar = tqdm(total=len(index), initial=state["rows_done"], unit="seg", desc="embed store", disable=not progress,
               smoothing=0.05)
    if stream is None and workers > 1:
        stream = process_stream(encoder, sources, workers, batch_size)
    jobs_of = {(a, b): _track_jobs(index, a, b) for a, b in todo if a >= n_head}
    streamed = stream([job for jobs in jobs_of.values() for job in jobs]) if stream is not None and todo else None
    try:
        for start, stop in todo:
            jobs = jobs_of.get((start, stop), [])
            if start < n_head:
                parts = [np.asarray(head[start:stop], dtype=np.float32)]
                bar.update(stop - start)
            elif streamed is not None:
                parts = []
                for _ in jobs:
                    parts.append(next(streamed))
                    bar.update(len(parts[-1]))
            else:
                parts = list(_embed_chunk_inline(encoder, dict(sources), jobs, batch_size, bar))
            block = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
            if len(block) != stop - start:
                raise StoreError(f"chunk {start}..{stop}: {len(block)} rows embedded")
            part = index.iloc[start:stop]
            _check_finite(block, encoder_label(encoder),
                          lambda i: f"track {part['track_id'].iat[i]!r} segment {part['segment'].iat[i]}")
            rows[start:stop] = block
            rows.flush()
            state["chunks"].append({"start": start, "stop": stop, "crc32": _crc(block)})
            state["rows_done"] = stop
            atomic_write_json(root / STATE, state)
    finally:
        bar.close()
        if streamed is not None:
            streamed.close()
    state["complete"] = True
    atomic_write_json(root / STATE, state)
    del rows
