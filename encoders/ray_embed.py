"""Embedding tracks on Ray workers (the optional ``ray`` extra).

The tracks to embed are cut into shards of whole tracks (about :data:`SHARD_ROWS` segments each).
Each Ray worker is an actor that holds the encoder and the corpora once and embeds one shard at a
time, decoding a track ahead of its encoder as the local path does; the driver receives the
shards as they finish and hands their rows on in job order. :func:`ray_stream` returns such a
stream for :func:`encoders.store.fill_store` and :func:`encoders.embed.embed_db`, which write the
rows where the local path writes them. Every worker must be able to read the corpora's files at
the same paths (one machine, or a shared file system).

The caller connects to Ray first (``bench.distributed.cluster.connect``).
"""
from __future__ import annotations

import itertools
from typing import Iterator, Mapping

import numpy as np

from datasets.corpora.corpus import Corpus

from .embed import BATCH_SIZE, Job, TrackStream, decoded_tracks, embed_segments, track_label
from .interface import Encoder
from .store import track_rows

#: Segments per shard: enough that a shard takes seconds (Ray's per-task cost is milliseconds),
#: few enough that two workers share a small DB.
SHARD_ROWS = 2_000


def shard_jobs(jobs: list[Job], shard_rows: int = SHARD_ROWS) -> list[list[Job]]:
    """Consecutive track jobs grouped into shards of at least ``shard_rows`` segments (the last may
    hold fewer); a track is never split."""
    shards: list[list[Job]] = [[]]
    rows = 0
    for job in jobs:
        shards[-1].append(job)
        rows += len(job[2])
        if rows >= shard_rows:
            shards.append([])
            rows = 0
    return [s for s in shards if s]


class EmbedWorker:
    """One Ray worker: the encoder on its device, the corpora, and the torch thread count it was given."""

    def __init__(self, encoder: Encoder, sources: Mapping[str, Corpus], batch_size: int, device: str,
                 threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoder = encoder.to(device)
        self.sources = dict(sources)
        self.batch_size = batch_size

    def embed(self, number: int, shard: list[Job]) -> tuple[int, np.ndarray]:
        """(``number``, the shard's rows in job order)."""
        blocks = []
        for source, run in itertools.groupby(shard, key=lambda job: job[0]):
            corpus, run = self.sources[source], list(run)
            for (_, track_id, seg_no), (_, audio) in zip(run, decoded_tracks(corpus, [t for _, t, _ in run])):
                segs = track_rows(audio, corpus.protocol, seg_no, track_label(corpus, track_id))
                blocks.append(embed_segments(self.encoder, segs, self.batch_size))
        return number, np.concatenate(blocks)


def cluster_workers(threads_per_worker: int = 1) -> int:
    """How many workers of ``threads_per_worker`` CPUs the connected Ray cluster holds."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads_per_worker)


def ray_stream(encoder: Encoder, sources: Mapping[str, Corpus], workers: int | None = None,
               batch_size: int = BATCH_SIZE, device: str = "cpu", threads_per_worker: int = 1,
               shard_rows: int = SHARD_ROWS) -> TrackStream:
    """A :data:`~encoders.embed.TrackStream` that embeds on ``workers`` Ray actors (default: as
    many as the cluster has CPUs for), each of ``threads_per_worker`` CPUs and, on a ``cuda``
    device, one GPU. Raises RuntimeError when Ray is not connected."""

    def stream(jobs: list[Job]) -> Iterator[np.ndarray]:
        import ray
        from ray.util.actor_pool import ActorPool

        if not ray.is_initialized():
            raise RuntimeError("Ray is not connected: call bench.distributed.cluster.connect() first")
        shards = shard_jobs(jobs, shard_rows)
        if not shards:
            return
        gpus = 1 if str(device).startswith("cuda") else 0
        actor = ray.remote(EmbedWorker).options(num_cpus=threads_per_worker, num_gpus=gpus)
        cpu_encoder = encoder.to("cpu")
        encoder_ref, sources_ref = ray.put(cpu_encoder), ray.put(dict(sources))
        n = min(workers or cluster_workers(threads_per_worker), len(shards))
        actors = [actor.remote(encoder_ref, sources_ref, batch_size, device, threads_per_worker) for _ in range(n)]
        try:
            done: dict[int, np.ndarray] = {}
            following = 0
            pool = ActorPool(actors)
            for number, block in pool.map_unordered(lambda a, item: a.embed.remote(*item), list(enumerate(shards))):
                done[number] = block
                while following in done:  # hand rows on in job order
                    block, start = done.pop(following), 0
                    for _, _, seg_no in shards[following]:
                        yield block[start:start + len(seg_no)]
                        start += len(seg_no)
                    following += 1
        finally:
            for a in actors:
                ray.kill(a)

    return stream
