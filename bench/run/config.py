"""The configuration of a benchmark run: data, encoder, query grid, methods and timing.

Defaults give the embedded default run; ``--config FILE`` (YAML) overrides any field, and
command-line options override the file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

from pydantic import ConfigDict, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from datasets.protocol import Protocol
from datasets.queries.queryset import QuerySetConfig
from methods.yaml_file import read_yaml

DEFAULT_HOP_S = Protocol().hop_s
#: How the interleaved re-timing (bench/run/retime.py) groups the compared points: "all" in one
#: group; "pairs", the focus method's beside one other method's at a time, each pair its own part,
#: so that two methods' indexes are in memory at once instead of every compared one.
INTERLEAVE = ("all", "pairs")


@dataclass(frozen=True)
class TimingConfig:
    """How latency and throughput are measured (docs/protocol.md: warm-up, repeats, fixed threads)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    threads: StrictInt = 1
    warmup: StrictInt = 20
    repeats: StrictInt = 3
    latency_queries: StrictInt = 400
    batch_repeats: StrictInt = 3  # 0: no batch QPS (NaN), e.g. where one batch over every query costs too much
    interleaved_repeats: StrictInt = 3  # rounds of the compared points' re-timing (bench/run/retime.py)
    interleave: StrictStr = "all"  # INTERLEAVE

    def __post_init__(self) -> None:
        if self.interleave not in INTERLEAVE:
            raise ValueError(f"timing.interleave={self.interleave!r}: allowed {', '.join(INTERLEAVE)}")
        for f in fields(self):
            if f.name == "interleave":
                continue
            lo = 0 if f.name in ("warmup", "batch_repeats") else 1
            if getattr(self, f.name) < lo:
                raise ValueError(f"timing.{f.name}={getattr(self, f.name)}: allowed >= {lo}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; its hash names the run folder."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    corpus: StrictStr = "synth"
    corpus_path: StrictStr | None = None
    fma_size: StrictStr = "small"
    synth_tracks: StrictInt | None = None
    synth_seed: StrictInt = 0
    noise: StrictStr = "synth"
    rooms: StrictStr = "simulated"
    encoder: StrictStr = "synth-default"  # encoders.registry.open_encoder: a checkpoint, a plugin, or precomputed:DIR
    encoder_params: dict[str, Any] = field(default_factory=dict)  # a plugin encoder's constructor arguments
    queries: QuerySetConfig = QuerySetConfig()
    db_splits: tuple[StrictStr, ...] = ("test", "val")
    # synthetic distractor segments appended to the DB only (datasets/distractors.py's synth fill, as
    # bench scale adds them): a DB where exact search is no longer the fastest way; embedding methods only
    distractors: StrictInt = 0
    hop_s: StrictFloat = DEFAULT_HOP_S  # the DB hop (docs/protocol.md); queries are cut at it too
    train_pairs: StrictInt = 6000
    held_out_pairs: StrictInt = 1000  # from held-out train tracks, for learned methods' early stopping
    k: StrictInt = 10
    seed: StrictInt = 0
    device: StrictStr = "cpu"
    timing: TimingConfig = TimingConfig()
    grids: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # seconds one method call (fit, build, the accuracy search) or one point's timing loop may take;
    # a guard against a plugin that never returns, not part of the run's identity (no number depends on it)
    call_limit_s: StrictFloat = 3600.0

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
        del d["timing"]["interleave"]  # each group is its own re-timing part
        if not self.distractors:  # runs made before distractors were a field keep their identity
            del d["distractors"]
        if self.hop_s == DEFAULT_HOP_S:  # runs made before the hop was a field keep their identity
            del d["hop_s"]
        return d


#: what a list-valued field looks like, for the error naming it
LIST_EXAMPLES = {"db_splits": "[test, val]"}
_EXPECTED = {"int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
             "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
             "bool_type": "true or false", "dict_type": "a mapping", "tuple_type": "a non-empty list",
             "list_type": "a non-empty list", "dataclass_type": "a mapping", "model_type": "a mapping"}


def _type_error(where: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where}: expected {expected}, got {value!r} ({type(value).__name__})")


def _where(loc: tuple) -> str:
    """A pydantic error location as the config names it: ``queries.snrs[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_type(cls: type, loc: tuple) -> Any:
    """The annotation of the field at ``loc`` (names through nested dataclasses; list indices
    skipped), or None where ``loc`` leaves the dataclasses."""
    annotation: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(annotation, type) and is_dataclass(annotation)):
            return None
        annotation = get_type_hints(annotation).get(part)
    return annotation


def _optional(cls: type, loc: tuple) -> bool:
    """Whether the field at ``loc`` of dataclass ``cls`` may be null."""
    return type(None) in get_args(_field_type(cls, loc))


def checked(cls: type, raw: Any, source: str) -> Any:
    """An instance of dataclass ``cls`` (its fields typed with pydantic's strict scalars and
    ``extra="forbid"``) from the mapping ``raw``, validated by pydantic against the annotations: the
    one schema of the run, scale and regression configs. Errors are ValueErrors that name
    ``source``, the field, the value and what is allowed."""
    if not isinstance(raw, dict):
        raise _type_error(source, f"a mapping of {cls.__name__} fields", raw)
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = sorted({_where(e["loc"]) for e in errors if e["type"] == "unexpected_keyword_argument"})
        if unknown:
            loc = next(e["loc"] for e in errors if e["type"] == "unexpected_keyword_argument")[:-1]
            where = f"{source}: {_where(loc)}" if loc else source
            names = [u.rpartition(".")[2] for u in unknown]
            allowed = sorted(f.name for f in fields(_field_type(cls, loc)))
            raise ValueError(f"{where}: unknown field(s) {names}; allowed: {allowed}") from None
        first = errors[0]
        if first["type"] == "missing":
            raise ValueError(f"{source}: {_where(first['loc'])}: required, and missing") from None
        if first["type"] in ("value_error", "assertion_error"):
            message, where = first["msg"].removeprefix("Value error, "), _where(first["loc"])
            named = not where or where in message  # a check that names its field itself
            raise ValueError(f"{source}: {message}" if named else f"{source}: {where}: {message}") from None
        where = _where(first["loc"])
        expected = _EXPECTED.get(first["type"], first["msg"].lower().removeprefix("input should be "))
        if expected == "a non-empty list" and where in LIST_EXAMPLES:
            expected += f" such as {LIST_EXAMPLES[where]}"
        if _optional(cls, first["loc"]):
            expected += " or null"
        raise _type_error(f"{source}: {where}", expected, first["input"]) from None


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
    """A RunConfig from a mapping of any subset of its fields (:func:`checked`); errors name ``source``."""
    raw = dict(raw) if isinstance(raw, dict) else raw
    if isinstance(raw, dict):
        for name in ("queries", "timing", "encoder_params", "grids"):
            if name in raw and raw[name] is None:  # an empty YAML section: the defaults
                raw[name] = {}
        if "grids" in raw:
            raw["grids"] = _grids_from(raw["grids"], source)
    return checked(RunConfig, raw, source)
