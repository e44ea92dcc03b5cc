"""The configuration of a scaling run: a run config (data, encoder, queries, timing, method grids,
the DB hop) plus the DB sizes, the distractors, the methods and the budgets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run.config import RunConfig, config_from_dict, read_yaml

SECTIONS = ("run", "sizes", "methods", "distractors", "latency_budget_ms", "build_budget_s", "workers",
            "accuracy_threads")


@dataclass(frozen=True)
class ScaleConfig:
    """A scaling run: ``run`` fixes everything but the DB size; the DB is the run's DB splits
    (the query tracks and the corpus's other DB tracks) followed by distractors, cut at each of
    ``sizes`` (ascending; ``"base"`` is the run's own DB alone, ``"max"`` every segment there is)."""

    run: RunConfig
    sizes: tuple[int | str, ...]
    methods: tuple[str, ...] = ("exhaustive", "flowhash", "lsh-directed", "ivfpq", "hnsw")
    real_distractors: bool = True
    synthetic_fill: bool = True
    latency_budget_ms: float = 2.0
    build_budget_s: float = 900.0
    workers: int = 2  # embedding processes for the distractor store
    accuracy_threads: int = 2  # the untimed accuracy passes; latency stays on run.timing.threads

    def to_dict(self) -> dict:
        """Plain-dict form for run.json and hashing."""
        return {"run": self.run.to_dict(), "sizes": list(self.sizes), "methods": list(self.methods),
                "distractors": {"real": self.real_distractors, "fill": self.synthetic_fill},
                "latency_budget_ms": self.latency_budget_ms, "build_budget_s": self.build_budget_s,
                "workers": self.workers, "accuracy_threads": self.accuracy_threads}

    @property
    def counted_sizes(self) -> tuple[int, ...]:
        """The sizes given as segment counts (not ``"base"`` or ``"max"``)."""
        return tuple(s for s in self.sizes if isinstance(s, int))

    def resolve_sizes(self, n_base: int, n_available: int) -> list[int]:
        """The sizes as row counts (``"base"`` is ``n_base``, ``"max"`` is ``n_available``); each must lie in
        [``n_base``, ``n_available``] (the DB always holds every query track)."""
        out = []
        for i, s in enumerate(self.sizes):
            n = n_available if s == "max" else n_base if s == "base" else int(s)
            if n < n_base:
                raise ValueError(f"sizes[{i}] = {s}: below the {n_base} segments of the query tracks and the "
                                 f"corpus's other DB tracks, which every DB of the run holds")
            if n > n_available:
                raise ValueError(f"sizes[{i}] = {s}: more than the {n_available} segments available "
                                 f"(corpus plus distractors)")
            out.append(n)
        return out


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def _size(value: Any) -> int | str | None:
    """One size: 'base', 'max' or a positive segment count (an integer, or its digits as ``--sizes``
    gives them, '_' or ',' grouping allowed); None when it is none of these."""
    if value in ("max", "base"):
        return value
    if isinstance(value, str):
        digits = value.replace("_", "").replace(",", "")
        value = int(digits) if digits.isascii() and digits.isdigit() else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_sizes(sizes: Any, source: str) -> tuple[int | str, ...]:
    """The ``sizes`` of a scaling config (the YAML list, or ``--sizes``' words): 'base' first if
    given, rising segment counts, 'max' last if given; errors name ``source`` and the item."""
    if not isinstance(sizes, list) or not sizes:
        raise ValueError(f"{_where(source, 'sizes')}: expected a non-empty list of segment counts, 'base' or 'max', "
                         f"got {sizes!r}")
    checked = [_size(s) for s in sizes]
    for i, (s, c) in enumerate(zip(sizes, checked)):
        if c is None:
            raise ValueError(f"{_where(source, f'sizes[{i}]')}: expected a positive integer, 'base' or 'max', "
                             f"got {s!r}")
    numeric = [s for s in checked if s not in ("max", "base")]
    if numeric != sorted(set(numeric)) or ("max" in checked and checked[-1] != "max") or checked.count("max") > 1 \
            or ("base" in checked and checked[0] != "base") or checked.count("base") > 1:
        raise ValueError(f"{_where(source, 'sizes')}: must rise strictly, with 'base' (if any) first and 'max' "
                         f"(if any) last; got {sizes}")
    return tuple(checked)


def scale_config_from_dict(raw: Any, source: str) -> ScaleConfig:
    """A ScaleConfig from a mapping (see ``configs/scale.yml``); errors name ``source`` and the field."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; allowed: {', '.join(SECTIONS)}")
    run = config_from_dict(raw.get("run") or {}, f"{source}: run")
    checked = parse_sizes(raw.get("sizes"), source)
    methods = raw.get("methods", list(ScaleConfig.methods))
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods) or not methods:
        raise ValueError(f"{_where(source, 'methods')}: expected a list of method names, got {methods!r}")
    from methods.registry import method_class

    for m in methods:
        try:
            method_class(m)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{_where(source, 'methods')}: {exc}") from None
        if method_class(m).input_kind != "embedding":
            raise ValueError(f"{_where(source, 'methods')}: {m} searches spectral images; a scaling run's DB "
                             f"store holds embeddings only")
    dist = raw.get("distractors") or {}
    if not isinstance(dist, dict) or set(dist) - {"real", "fill"} or \
            not all(isinstance(v, bool) for v in dist.values()):
        raise ValueError(f"{_where(source, 'distractors')}: expected {{real: true|false, fill: true|false}}, "
                         f"got {dist!r}")
    numbers = {}
    for key, default, low in (("latency_budget_ms", ScaleConfig.latency_budget_ms, 0.0),
                              ("build_budget_s", ScaleConfig.build_budget_s, 0.0)):
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= low:
            raise ValueError(f"{_where(source, key)}: expected a positive number, got {v!r}")
        numbers[key] = float(v)
    counts = {}
    for key, default in (("workers", ScaleConfig.workers), ("accuracy_threads", ScaleConfig.accuracy_threads)):
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
            raise ValueError(f"{_where(source, key)}: expected an integer 1..64, got {v!r}")
        counts[key] = v
    return ScaleConfig(run, checked, tuple(dict.fromkeys(["exhaustive", *methods])),
                       dist.get("real", True), dist.get("fill", True), numbers["latency_budget_ms"],
                       numbers["build_budget_s"], counts["workers"], counts["accuracy_threads"])


def load_scale_config(path: Path | str) -> ScaleConfig:
    """A ScaleConfig from a YAML file."""
    return scale_config_from_dict(read_yaml(path, "scale config file"), str(path))
