"""An executor (``bench.run.executor.Executor``) that runs each job as a Ray task with its CPUs
reserved (``num_cpus``). The shared inputs go into Ray's object store once; every task reads them
from there (NumPy arrays without a copy, read-only).

Latency is only comparable between nodes of one kind, so by default the tasks are pinned to the
nodes of one kind (the kind with the most CPUs, or the one asked for), spread over them in turn by
their CPUs. ``mix_nodes`` lets Ray place them on any node, and the run records that it did.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from datasets.corpora.corpus import Corpus
from encoders.embed import TrackStream
from encoders.interface import Encoder
from encoders.ray_embed import SHARD_ROWS, ray_stream

from .cluster import Node, RayUnavailable, cluster_nodes, connect, nodes_by_kind, require_ray


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayExecutor:
    """Jobs as Ray tasks on the cluster at ``address`` (default: a local instance of ``num_cpus``)."""

    name = "ray"
    remote = True
    store_chunk_rows = SHARD_ROWS  # a store filled on Ray commits (and resumes) shard by shard

    def __init__(self, address: str | None = None, num_cpus: int | None = None, mix_nodes: bool = False,
                 node_kind: str | None = None, reserve_cpus: int | None = None) -> None:
        self.address = address
        self.reserve_cpus = reserve_cpus
        self.resources = connect(address, num_cpus)
        groups = nodes_by_kind(cluster_nodes())
        if not groups:
            raise RayUnavailable("the Ray cluster has no alive node with CPUs")
        if node_kind is not None and node_kind not in groups:
            raise ValueError(f"--node-kind {node_kind!r}: the cluster's node kinds are {sorted(groups)}")
        self.mix_nodes = mix_nodes
        self.kinds = groups
        self.kind = None if mix_nodes else (node_kind or next(iter(groups)))
        self.nodes: list[Node] = [n for g in groups.values() for n in g] if mix_nodes else groups[self.kind]
        self.pinned = not mix_nodes and len(groups) > 1

    def _slots(self, num_cpus: int) -> list[Node]:
        """Nodes in the order tasks are pinned to them: each as often as it holds ``num_cpus`` CPUs."""
        slots = [node for node in self.nodes for _ in range(node.cpus // num_cpus)]
        if not slots:
            raise ValueError(f"no node of kind {self.kind!r} has {num_cpus} CPUs for a task "
                             f"(nodes: {[(n.machine['host'], n.cpus) for n in self.nodes]})")
        return slots

    def map(self, fn: Callable[..., Any], jobs: list[tuple], shared: tuple = (),
            num_cpus: int = 1) -> Iterator[tuple[int, Any]]:
        """(job number, ``fn(*shared, *job)``) as each Ray task finishes, each task reserving
        ``num_cpus`` CPUs (at least ``reserve_cpus``, to keep tasks from sharing a node's caches);
        the unfinished ones are cancelled when the caller stops early (an error, Ctrl-C)."""
        ray = require_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        num_cpus = max(num_cpus, self.reserve_cpus or 0)
        slots = self._slots(num_cpus)
        task = ray.remote(_call)
        shared_refs = [ray.put(value) for value in shared]
        numbers = {}
        for number, job in enumerate(jobs):
            options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": 0}
            if self.pinned:
                node = slots[number % len(slots)]
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            numbers[task.options(**options).remote(fn, *shared_refs, *job)] = number
        pending = list(numbers)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield numbers[ref], ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def track_stream(self, encoder: Encoder, sources: Mapping[str, Corpus], device: str) -> TrackStream:
        """Tracks embedded by Ray workers, one CPU each (and a GPU each on ``cuda``)."""
        return ray_stream(encoder, sources, device=device)

    def describe(self) -> dict:
        """Engine, address, the latency node kind (or ``mixed``) and every node with its kind."""
        return {"engine": self.name, "address": self.address or "local instance", "reserve_cpus": self.reserve_cpus,
                "latency_node_kind": self.kind or "mixed",
                "nodes": [{**n.machine, "kind": n.kind, "ray_cpus": n.cpus, "ray_gpus": n.gpus,
                           "used": n in self.nodes} for g in self.kinds.values() for n in g]}
