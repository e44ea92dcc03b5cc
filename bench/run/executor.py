"""Where a run's method configurations are evaluated: here, one after another (:class:`LocalExecutor`),
or on other workers (``bench.distributed.executor.RayExecutor``). Both take the same jobs and hand
back the same results; the runner writes them into the run folder as they arrive."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol

from datasets.corpora.corpus import Corpus
from encoders.embed import TrackStream
from encoders.interface import Encoder
from encoders.store import CHUNK_ROWS


class Executor(Protocol):
    """Runs ``fn(*shared, *job)`` for each job, each on ``num_cpus`` CPUs; yields (job number,
    result) as each finishes. ``remote`` says whether ``fn`` runs in another process, where it
    sees ``shared`` as it was when handed over (so lazily computed inputs must be computed first)."""

    name: str
    remote: bool
    #: rows per committed chunk of an on-disk embedding store filled through :meth:`track_stream`
    store_chunk_rows: int

    def map(self, fn: Callable[..., Any], jobs: list[tuple], shared: tuple = (),
            num_cpus: int = 1) -> Iterator[tuple[int, Any]]:
        """(job number, ``fn(*shared, *job)``) for every job, as each finishes."""
        ...

    def describe(self) -> dict:
        """What run.json records of the engine (its name, and for a cluster its nodes)."""
        ...

    def track_stream(self, encoder: Encoder, sources: Mapping[str, Corpus], device: str) -> TrackStream | None:
        """Where the run's DB tracks are embedded: a stream over this engine's workers, or None (here)."""
        ...


class LocalExecutor:
    """Every job in this process, in order."""

    name = "local"
    remote = False
    store_chunk_rows = CHUNK_ROWS

    def map(self, fn: Callable[..., Any], jobs: list[tuple], shared: tuple = (),
            num_cpus: int = 1) -> Iterator[tuple[int, Any]]:
        """(job number, ``fn(*shared, *job)``), one job after another."""
        for number, job in enumerate(jobs):
            yield number, fn(*shared, *job)

    def describe(self) -> dict:
        """``{"engine": "local"}``."""
        return {"engine": self.name}

    def track_stream(self, encoder: Encoder, sources: Mapping[str, Corpus], device: str) -> TrackStream | None:
        """None: the DB is embedded in this process."""
        return None
