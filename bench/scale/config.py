"""The configuration of a scaling run: a run config (data, encoder, queries, timing, method grids,
the DB hop) plus the DB sizes, the distractors, the methods and the budgets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from bench.run.config import RunConfig, checked, config_from_dict, read_yaml

DEFAULT_METHODS = ("exhaustive", "flowhash", "lsh-directed", "ivfpq", "hnsw")


def _methods(value: tuple[str, ...]) -> tuple[str, ...]:
    """Registered methods that search embeddings, the exhaustive reference first."""
    from methods.registry import method_class

    if not value:
        raise ValueError(f"methods: expected a list of method names, got {list(value)!r}")
    for m in value:
        try:
            kind = method_class(m).input_kind
        except (KeyError, ValueError) as exc:
            raise ValueError(f"methods: {exc}") from None
        if kind != "embedding":
            raise ValueError(f"methods: {m} searches spectral images; a scaling run's DB store holds embeddings only")
    return tuple(dict.fromkeys(["exhaustive", *value]))


@dataclass(frozen=True)
class Distractors:
    """What a scaling run's DB grows by beyond its own rows (``datasets.distractors``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    real: StrictBool = True  # real music (debian-distractors)
    fill: StrictBool = True  # the synthetic fill, where the real music runs out
    # model: the DB beyond the run's own rows (or beyond real_until rows) drawn from the fingerprint model
    # (bench/scale/fingerprint_model.py), fitted on the distractor rows that real and fill give, up to
    # real_until rows, else up to the largest size (bench/scale/database.py, build_model_db)
    model: StrictBool = False
    real_until: StrictInt | None = None  # with model: those distractors up to this many DB rows, the model beyond

    def __post_init__(self) -> None:
        if self.real_until is not None and not self.model:
            raise ValueError("distractors.real_until: applies with distractors.model: true only")
        if self.real_until is not None and self.real_until <= 0:
            raise ValueError(f"distractors.real_until: expected a positive segment count, got {self.real_until}")

    def to_dict(self) -> dict:
        """Plain-dict form; the model's fields only when set, so that earlier runs keep their hashes."""
        out = {"real": self.real, "fill": self.fill}
        if self.model:
            out.update({"model": True, "real_until": self.real_until})
        return out


@dataclass(frozen=True)
class ScaleConfig:
    """A scaling run: ``run`` fixes everything but the DB size; the DB is the run's DB splits
    (the query tracks and the corpus's other DB tracks) followed by distractors, cut at each of
    ``sizes`` (ascending; ``"base"`` is the run's own DB alone, ``"max"`` every segment there is).
    Read from a file, each field is validated against its annotation (``bench.run.config.checked``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    run: RunConfig
    sizes: Annotated[tuple[int | str, ...], BeforeValidator(parse_sizes)]
    methods: Annotated[tuple[str, ...], AfterValidator(_methods)] = DEFAULT_METHODS
    distractors: Distractors = Distractors()
    latency_budget_ms: StrictFloat = 2.0
    build_budget_s: StrictFloat = 900.0
    workers: StrictInt = 2  # embedding processes for the distractor store
    # a fingerprint-model validation (bench scale --validate-model's folder or its validation.csv): with
    # distractors.model, a method it does not find matching is not run at sizes holding model rows
    model_validation: StrictStr | None = None
    accuracy_threads: StrictInt = 2  # the untimed accuracy passes; latency stays on run.timing.threads

    def __post_init__(self) -> None:
        for key in ("latency_budget_ms", "build_budget_s"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: expected a positive number, got {getattr(self, key)!r}")
        for key in ("workers", "accuracy_threads"):
            if not 1 <= getattr(self, key) <= 64:
                raise ValueError(f"{key}: expected an integer 1..64, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        """Plain-dict form for run.json and hashing."""
        return {"run": self.run.to_dict(), "sizes": list(self.sizes), "methods": list(self.methods),
                "distractors": self.distractors.to_dict(),
                "latency_budget_ms": self.latency_budget_ms, "build_budget_s": self.build_budget_s,
                "workers": self.workers, "accuracy_threads": self.accuracy_threads,
                **({"model_validation": self.model_validation} if self.model_validation else {})}

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


def _size(value: Any) -> int | str | None:
    """One size: 'base', 'max' or a positive segment count (an integer, or its digits as ``--sizes``
    gives them, '_' or ',' grouping allowed); None when it is none of these."""
    if value in ("max", "base"):
        return value
    if isinstance(value, str):
        digits = value.replace("_", "").replace(",", "")
        value = int(digits) if digits.isascii() and digits.isdigit() else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_sizes(sizes: Any) -> tuple[int | str, ...]:
    """The ``sizes`` of a scaling config (the YAML list, or ``--sizes``' words): 'base' first if
    given, rising segment counts, 'max' last if given; errors name the item (``checked`` adds the
    file)."""
    if not isinstance(sizes, list) or not sizes:
        raise ValueError(f"sizes: expected a non-empty list of segment counts, 'base' or 'max', "
                         f"got {sizes!r}")
    checked = [_size(s) for s in sizes]
    for i, (s, c) in enumerate(zip(sizes, checked)):
        if c is None:
            raise ValueError(f"sizes[{i}]: expected a positive integer, 'base' or 'max', "
                             f"got {s!r}")
    numeric = [s for s in checked if s not in ("max", "base")]
    if numeric != sorted(set(numeric)) or ("max" in checked and checked[-1] != "max") or checked.count("max") > 1 \
            or ("base" in checked and checked[0] != "base") or checked.count("base") > 1:
        raise ValueError(f"sizes: must rise strictly, with 'base' (if any) first and 'max' "
                         f"(if any) last; got {sizes}")
    return tuple(checked)


def scale_config_from_dict(raw: Any, source: str) -> ScaleConfig:
    """A ScaleConfig from a mapping (see ``configs/scale.yml``); errors name ``source`` and the field."""
    if isinstance(raw, dict):
        raw = {**raw, "run": config_from_dict(raw.get("run") or {}, f"{source}: run")}
        if raw.get("distractors") is None:
            raw.pop("distractors", None)
    return checked(ScaleConfig, raw, source)


def load_scale_config(path: Path | str) -> ScaleConfig:
    """A ScaleConfig from a YAML file."""
    return scale_config_from_dict(read_yaml(path, "scale config file"), str(path))
