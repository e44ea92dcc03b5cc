"""The fixed scenario of the regression check (``bench/regress/scenario.yml``) and its tolerances."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, StrictFloat, StrictInt, StrictStr

from bench.run.config import RunConfig, checked, config_from_dict
from datasets.cache import stable_hash
from methods.registry import method_class
from methods.yaml_file import read_yaml

DEFAULT_SCENARIO = Path(__file__).with_name("scenario.yml")


HIT_RATE_RULES = ("paired", "points")


@dataclass(frozen=True)
class Tolerances:
    """How far each kind of metric may move against the baseline before it counts as a regression.

    ``hit_rate_rule`` says how a hit rate is judged: ``points``, a drop of more than
    ``hit_rate_drop_points`` (never less than one query of the cell); ``paired``, a drop of more
    than ``hit_rate_drop_points`` that is also significant: today's per-query hits against the
    baseline's on the same queries, the paired 95% interval wholly below 0 and the exact McNemar
    test under 5%, i.e. a loss larger than the queries that changed can show by chance
    (docs/protocol.md, "Uncertainty").
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    hit_rate_rule: StrictStr = "paired"
    hit_rate_drop_points: StrictFloat = 1.0
    candidate_speedup_min_ratio: StrictFloat = 0.95
    latency_speedup_min_ratio: StrictFloat = 0.8
    kernel_speedup_min_ratio: StrictFloat = 0.5
    expected_size_max_ratio: StrictFloat = 1.05
    entropy_drop: StrictFloat = 0.01

    def __post_init__(self) -> None:
        if self.hit_rate_rule not in HIT_RATE_RULES:
            raise ValueError(f"tolerances.hit_rate_rule={self.hit_rate_rule!r}: allowed {', '.join(HIT_RATE_RULES)}")
        for f in fields(self):
            if f.name != "hit_rate_rule" and not getattr(self, f.name) >= 0:
                raise ValueError(f"tolerances.{f.name}={getattr(self, f.name)}: allowed >= 0")


def _method(name: str) -> str:
    method_class(name)
    return name


def _compiled_entry(entry: dict) -> dict:
    """One ``compiled`` entry checked: a hash-table method, its build and one query point."""
    if set(entry) != {"method", "build", "query"}:
        raise ValueError(f"expected a mapping with exactly method, build and query, got {sorted(entry)}")
    cls = method_class(str(entry["method"]))
    if "kernels" not in cls.build_defaults:
        raise ValueError(f"method {entry['method']!r} has no 'kernels' build parameter to compare")
    if not isinstance(entry["build"], dict) or "kernels" in entry["build"] or not isinstance(entry["query"], dict):
        raise ValueError("build and query must be mappings, build without 'kernels' (both are timed)")
    return {"method": str(entry["method"]), "build": dict(entry["build"]), "query": dict(entry["query"])}


@dataclass(frozen=True)
class Scenario:
    """What ``bench regress`` runs: a run config (with its grids), the focus method and its rivals.
    Read from a file, each field is validated against its annotation (``bench.run.config.checked``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    config: RunConfig
    focus: Annotated[StrictStr, AfterValidator(_method)] = "flowhash"
    versus: tuple[Annotated[StrictStr, AfterValidator(_method)], ...] = ("lsh", "ivfpq")
    rounds: StrictInt = 7
    tolerances: Tolerances = Tolerances()
    # {method, build, query}: compiled kernels timed against the NumPy reference
    compiled: tuple[Annotated[dict[str, Any], AfterValidator(_compiled_entry)], ...] = ()
    source: str = field(default="", compare=False)  # the file it was read from; not part of the file

    def __post_init__(self) -> None:
        if self.focus in self.versus or not self.versus:
            raise ValueError(f"versus={list(self.versus)} must name at least one method other than "
                             f"focus={self.focus!r}")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds!r}: allowed an integer >= 1")

    @property
    def methods(self) -> list[str]:
        """Every method the scenario runs, the exhaustive reference first."""
        return list(dict.fromkeys(["exhaustive", self.focus, *self.versus]))

    def identity(self) -> dict:
        """What the measured numbers depend on (tolerances excluded): the baseline must match it."""
        identity = {"config": self.config.to_dict(), "focus": self.focus, "versus": list(self.versus),
                    "rounds": self.rounds}
        if self.compiled:
            identity["compiled"] = list(self.compiled)
        return json.loads(json.dumps(identity))

    def hash(self) -> str:
        """A short hash of ``identity()``."""
        return stable_hash(self.identity(), n=16)


def load_scenario(path: Path | str = DEFAULT_SCENARIO) -> Scenario:
    """Read and check a scenario file; errors name the file and the field."""
    path = Path(path)
    raw = read_yaml(path, "scenario file")
    if isinstance(raw, dict):
        if "source" in raw or "config" not in raw:
            raise ValueError(f"{path}: expected a mapping with 'config' and optionally focus, versus, rounds, "
                             f"tolerances, compiled")
        raw = {**raw, "config": config_from_dict(raw["config"], f"{path}: config"), "source": str(path)}
        if raw.get("compiled") is None:
            raw.pop("compiled", None)
        if raw.get("tolerances") is None:
            raw.pop("tolerances", None)
    return checked(Scenario, raw, str(path))
