"""The configuration of a benchmark run: data, encoder, query grid, methods and timing.

Defaults give the embedded default run; ``--config FILE`` (YAML) overrides any field, and
command-line options override the file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from datasets.protocol import Protocol
from datasets.queries.conditions import parse_duration, parse_reverb, parse_snr
from datasets.queries.queryset import QuerySetConfig
from datasets.queries.transforms import parse_transform
from methods.yaml_file import read_yaml

DEFAULT_HOP_S = Protocol().hop_s


@dataclass(frozen=True)
class TimingConfig:
    """How latency and throughput are measured (docs/protocol.md: warm-up, repeats, fixed threads)."""

    threads: int = 1
    warmup: int = 20
    repeats: int = 3
    latency_queries: int = 400
    batch_repeats: int = 3  # 0: no batch QPS (NaN), e.g. where one batch over every query costs too much
    interleaved_repeats: int = 3  # rounds of the compared points' re-timing (bench/run/retime.py)

    def __post_init__(self) -> None:
        for f in fields(self):
            lo = 0 if f.name in ("warmup", "batch_repeats") else 1
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
    encoder: str = "synth-default"  # encoders.registry.open_encoder: a checkpoint, a plugin, or precomputed:DIR
    encoder_params: dict[str, Any] = field(default_factory=dict)  # a plugin encoder's constructor arguments
    queries: QuerySetConfig = QuerySetConfig()
    db_splits: tuple[str, ...] = ("test", "val")
    # synthetic distractor segments appended to the DB only (datasets/distractors.py's synth fill, as
    # bench scale adds them): a DB where exact search is no longer the fastest way; embedding methods only
    distractors: int = 0
    hop_s: float = DEFAULT_HOP_S  # the DB hop (docs/protocol.md); queries are cut at it too
    train_pairs: int = 6000
    held_out_pairs: int = 1000  # from held-out train tracks, for learned methods' early stopping
    k: int = 10
    seed: int = 0
    device: str = "cpu"
    timing: TimingConfig = TimingConfig()
    grids: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # seconds one method call (fit, build, the accuracy search) or one point's timing loop may take;
    # a guard against a plugin that never returns, not part of the run's identity (no number depends on it)
    call_limit_s: float = 3600.0

    def __post_init__(self) -> None:
        # synth_seed and synth_tracks are checked as the corpus opens, before any data is built
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: allowed integers >= 0")
        if not self.call_limit_s > 0:
            raise ValueError(f"call_limit_s={self.call_limit_s}: allowed > 0 (seconds)")
        if "test" not in self.db_splits or any(s not in ("train", "val", "test") for s in self.db_splits):
            raise ValueError(f"db_splits={list(self.db_splits)}: must hold 'test' and only train/val/test")
        if isinstance(self.distractors, bool) or not isinstance(self.distractors, int) or self.distractors < 0:
            raise ValueError(f"distractors={self.distractors!r}: allowed integers >= 0 (segments)")
        if self.k < 1:
            raise ValueError(f"k={self.k}: allowed >= 1")
        for name in ("train_pairs", "held_out_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: allowed >= 1")
        self.protocol()  # checks hop_s

    def protocol(self) -> Protocol:
        """The signal protocol of the run: the default one with the config's DB hop."""
        return Protocol(hop_s=self.hop_s)

    def to_dict(self) -> dict:
        """Plain-dict form for run.json and hashing."""
        d = asdict(self)
        d["db_splits"] = list(self.db_splits)
        d["queries"] = self.queries.to_dict()  # without the transform and open-set fields at their defaults
        del d["call_limit_s"]
        if not self.encoder_params:  # runs made before encoder plugins keep their identity
            del d["encoder_params"]
        del d["timing"]["interleaved_repeats"]  # the re-timing part records its rounds and is redone when they change
        if not self.distractors:  # runs made before distractors were a field keep their identity
            del d["distractors"]
        if self.hop_s == DEFAULT_HOP_S:  # runs made before the hop was a field keep their identity
            del d["hop_s"]
        return d


def _type_error(where: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where}: expected {expected}, got {value!r} ({type(value).__name__})")


def _check_scalar(where: str, annotation: str, value: Any) -> Any:
    """``value`` checked against a scalar field annotation ('int', 'float', 'str', 'str | None', ...)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None and optional:
        return None
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(where, "an integer" + (" or null" if optional else ""), value)
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(where, "a number" + (" or null" if optional else ""), value)
        value = float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise _type_error(where, "a string" + (" or null" if optional else ""), value)
    return value


def _check_fields(cls: type, raw: dict, prefix: str, skip: tuple[str, ...] = ()) -> dict:
    """The scalar fields of ``raw`` checked against dataclass ``cls``'s annotations; errors name
    ``prefix.field`` and the expected type. Fields in ``skip`` are left to the caller."""
    types = {f.name: f.type for f in fields(cls)}
    return {k: v if k in skip else _check_scalar(f"{prefix}{k}", types[k], v) for k, v in raw.items()}


def _list_of(where: str, value: Any, example: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise _type_error(where, f"a non-empty list such as {example}", value)
    return list(value)


def _section(raw: Any, cls: type, where: str) -> dict:
    """``raw`` as a mapping of some of dataclass ``cls``'s fields, or an error naming ``where``."""
    if not isinstance(raw, dict):
        raise _type_error(where, f"a mapping of {cls.__name__} fields", raw)
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return raw


def _queries_from(raw: Any, source: str) -> QuerySetConfig:
    raw = _section(raw, QuerySetConfig, f"{source}: queries")
    lists = {"durations": (parse_duration, "[1, 2]"), "snrs": (parse_snr, "[clean, 10, 0]"),
             "reverbs": (parse_reverb, "[none, 0.6]"),
             "transforms": (parse_transform, "[none, stretch:1.05, pitch:-1, speed:1.02, mp3:32, phone:gsm]")}
    out = _check_fields(QuerySetConfig, raw, f"{source}: queries.", skip=tuple(lists))
    for name, (parse, example) in lists.items():
        if name in out:
            where = f"{source}: queries.{name}"
            values = []
            for i, x in enumerate(_list_of(where, out[name], example)):
                try:  # None: a clean / dry cell as run.json records it
                    values.append(None if x is None and name in ("snrs", "reverbs") else parse(x))
                except ValueError as exc:
                    raise ValueError(f"{where}[{i}]: {exc}") from None
            out[name] = tuple(values)
    return QuerySetConfig(**out)


def _grids_from(raw: Any, source: str) -> dict:
    """Grid overrides checked: known method names (listing them) and valid parameter lists."""
    from methods.registry import method_names, resolve_grid

    if not isinstance(raw, dict):
        raise _type_error(f"{source}: grids", "a mapping of method name to {build: [...], query: [...]}", raw)
    known = method_names()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{source}: grids: unknown method(s) {unknown}; known: {', '.join(known)} "
                         f"(a plugin's method is known once its file is given with --plugin)")
    for name, override in raw.items():
        resolve_grid(name, override, f"{source}: grids")
    return dict(raw)


def load_config(path: Path | str | None) -> RunConfig:
    """A RunConfig from a YAML file (any subset of fields), or the defaults when ``path`` is None."""
    if path is None:
        return RunConfig()
    return config_from_dict(read_yaml(path), str(path))


def config_from_dict(raw: Any, source: str) -> RunConfig:
    """A RunConfig from a mapping of any subset of its fields; errors name ``source``."""
    raw = dict(_section(raw, RunConfig, source))
    try:
        raw = _check_fields(RunConfig, raw, f"{source}: ",
                            skip=("queries", "timing", "db_splits", "grids", "encoder_params"))
        if "encoder_params" in raw:
            params = raw["encoder_params"] or {}
            if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
                raise _type_error(f"{source}: encoder_params", "a mapping of parameter names to values", params)
            raw["encoder_params"] = dict(params)
        if "queries" in raw:
            raw["queries"] = _queries_from(raw["queries"] or {}, source)
        if "timing" in raw:
            timing = _section(raw["timing"] or {}, TimingConfig, f"{source}: timing")
            raw["timing"] = TimingConfig(**_check_fields(TimingConfig, timing, f"{source}: timing."))
        if "db_splits" in raw:
            splits = _list_of(f"{source}: db_splits", raw["db_splits"], "[test, val]")
            raw["db_splits"] = tuple(_check_scalar(f"{source}: db_splits[{i}]", "str", x) for i, x in enumerate(splits))
        if "grids" in raw:
            raw["grids"] = _grids_from(raw["grids"] or {}, source)
        return replace(RunConfig(), **raw)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(source) else f"{source}: {message}") from None
