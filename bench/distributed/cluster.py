"""Connecting to Ray, and the nodes of the cluster with their kinds (CPU model and architecture:
latencies are only comparable between nodes of one kind, at one thread count)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from bench.run.environment import node_kind, this_node
from datasets.errors import UserError

INSTALL_HINT = "pip install -e '.[ray]' (or: pip install 'ray[default]>=2.40')"
#: Seconds to wait for the cluster's address to answer before giving up (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0


class RayUnavailable(UserError, RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def require_ray():
    """The ``ray`` module, or RayUnavailable saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--engine ray needs the optional extra: {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise RayUnavailable unless a TCP connection to ``address``'s host and port (``HOST:PORT``,
    ``ray://HOST:PORT``) opens within ``timeout_s``; ``auto`` and addresses without a port are left to Ray."""
    import re
    import socket

    match = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d+)", address.strip())
    if match is None:
        return
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: nothing answered on {host}:{port} within "
                             f"{timeout_s:g} s ({type(exc).__name__}: {exc}). Start it with `ray start --head`, or "
                             f"check --ray-address / RAY_ADDRESS (docs/distributed.md)") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Connect to the Ray cluster at ``address`` (``auto``, ``HOST:6379``, ``ray://HOST:10001``), or,
    without one (and no ``RAY_ADDRESS`` in the environment), start a local instance of ``num_cpus``
    CPUs (default: all), whose workers see this process's ``FLOWHASH_BENCH_CACHE``. Already
    connected: nothing changes. Returns the cluster's resources."""
    import os

    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "configure_logging": False}
        try:
            if address or os.environ.get("RAY_ADDRESS"):
                check_reachable(address or os.environ["RAY_ADDRESS"])
                ray.init(address=address or os.environ["RAY_ADDRESS"], **kwargs)
            else:
                env = {k: os.environ[k] for k in ("FLOWHASH_BENCH_CACHE",) if k in os.environ}
                ray.init(num_cpus=num_cpus, runtime_env={"env_vars": env} if env else None, **kwargs)
        except ConnectionError as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                                 f"{exc}. Start it with `ray start --head` (docs/distributed.md)") from None
    return dict(ray.cluster_resources())


@dataclass(frozen=True)
class Node:
    """One alive node: its Ray id, what it holds, and the machine as :func:`this_node` sees it."""

    node_id: str
    cpus: int
    gpus: int
    machine: dict

    @property
    def kind(self) -> str:
        """:func:`bench.run.environment.node_kind` of the machine."""
        return node_kind(self.machine)


def _probe() -> dict:
    return this_node()


def cluster_nodes() -> list[Node]:
    """The alive nodes with CPUs, each probed by a zero-CPU task pinned to it."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_probe)
    alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in alive]
    return [Node(n["NodeID"], int(n["Resources"]["CPU"]), int(n["Resources"].get("GPU", 0)), machine)
            for n, machine in zip(alive, ray.get(refs))]


def nodes_by_kind(nodes: list[Node]) -> dict[str, list[Node]]:
    """Nodes grouped by kind, the kind with the most CPUs first."""
    groups: dict[str, list[Node]] = defaultdict(list)
    for node in nodes:
        groups[node.kind].append(node)
    return dict(sorted(groups.items(), key=lambda kv: -sum(n.cpus for n in kv[1])))
