"""The configuration of a benchmark run: data, encoder, query grid, methods and timing.

Defaults give the embedded default run; ``--config FILE`` (YAML) overrides any field, and
command-line options override the file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from datasets.queries.conditions import parse_duration, parse_reverb, parse_snr
from datasets.queries.queryset import QuerySetConfig


@dataclass(frozen=True)
class TimingConfig:
    """How latency and throughput are measured (docs/protocol.md: warm-up, repeats, fixed threads)."""

    threads: int = 1
    warmup: int = 20
    repeats: int = 3
    latency_queries: int = 400
    batch_repeats: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            lo = 0 if f.name == "warmup" else 1
            if getattr(self, f.name) < lo:
                raise ValueError(f"timing.{f.name}={getattr(self, f.name)}: allowed >= {lo}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; its hash names the run folder."""

    corpus: str = "synth"
    corpus_path: str | None = None
    fma_size: str = "small"
    synth_tracks: int | None = None
    synth_seed: int = 0
    noise: str = "synth"
    rooms: str = "simulated"
    encoder: str = "synth-default"
    queries: QuerySetConfig = QuerySetConfig()
    db_splits: tuple[str, ...] = ("test", "val")
    train_pairs: int = 6000
    k: int = 10
    seed: int = 0
    device: str = "cpu"
    timing: TimingConfig = TimingConfig()
    grids: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "test" not in self.db_splits or any(s not in ("train", "val", "test") for s in self.db_splits):
            raise ValueError(f"db_splits={list(self.db_splits)}: must hold 'test' and only train/val/test")
        if self.k < 1:
            raise ValueError(f"k={self.k}: allowed >= 1")
        if self.train_pairs < 1:
            raise ValueError(f"train_pairs={self.train_pairs}: allowed >= 1")

    def to_dict(self) -> dict:
        """Plain-dict form for run.json and hashing."""
        d = asdict(self)
        d["db_splits"] = list(self.db_splits)
        return d


def _queries_from(raw: dict) -> QuerySetConfig:
    allowed = {f.name for f in fields(QuerySetConfig)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"queries: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    out = dict(raw)
    if "durations" in out:
        out["durations"] = tuple(parse_duration(x) for x in out["durations"])
    if "snrs" in out:
        out["snrs"] = tuple(parse_snr(x) for x in out["snrs"])
    if "reverbs" in out:
        out["reverbs"] = tuple(parse_reverb(x) for x in out["reverbs"])
    return QuerySetConfig(**out)


def load_config(path: Path | str | None) -> RunConfig:
    """A RunConfig from a YAML file (any subset of fields), or the defaults when ``path`` is None."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    return config_from_dict(raw, str(path))


def config_from_dict(raw: Any, source: str) -> RunConfig:
    """A RunConfig from a mapping of any subset of its fields; errors name ``source``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of RunConfig fields at the top level")
    raw = dict(raw)
    allowed = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    try:
        if "queries" in raw:
            raw["queries"] = _queries_from(raw["queries"] or {})
        if "timing" in raw:
            raw["timing"] = TimingConfig(**(raw["timing"] or {}))
        if "db_splits" in raw:
            raw["db_splits"] = tuple(raw["db_splits"])
        return replace(RunConfig(), **raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None
