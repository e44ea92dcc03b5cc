"""The fixed scenario of the regression check (``bench/regress/scenario.yml``) and its tolerances."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from bench.run.config import RunConfig, config_from_dict
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

    hit_rate_rule: str = "paired"
    hit_rate_drop_points: float = 1.0
    candidate_speedup_min_ratio: float = 0.95
    latency_speedup_min_ratio: float = 0.8
    kernel_speedup_min_ratio: float = 0.5
    expected_size_max_ratio: float = 1.05
    entropy_drop: float = 0.01

    def __post_init__(self) -> None:
        if self.hit_rate_rule not in HIT_RATE_RULES:
            raise ValueError(f"tolerances.hit_rate_rule={self.hit_rate_rule!r}: allowed {', '.join(HIT_RATE_RULES)}")
        for f in fields(self):
            if f.name != "hit_rate_rule" and not getattr(self, f.name) >= 0:
                raise ValueError(f"tolerances.{f.name}={getattr(self, f.name)}: allowed >= 0")


@dataclass(frozen=True)
class Scenario:
    """What ``bench regress`` runs: a run config (with its grids), the focus method and its rivals."""

    config: RunConfig
    focus: str
    versus: tuple[str, ...]
    rounds: int
    tolerances: Tolerances
    source: str
    compiled: tuple[dict, ...] = ()  # {method, build, query}: compiled kernels timed against the NumPy reference

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
    allowed = {"config", "focus", "versus", "rounds", "tolerances", "compiled"}
    if not isinstance(raw, dict) or not set(raw) <= allowed or "config" not in raw:
        raise ValueError(f"{path}: expected a mapping with 'config' and optionally {sorted(allowed - {'config'})}")
    config = config_from_dict(raw["config"], f"{path}: config")
    focus = str(raw.get("focus", "flowhash"))
    versus = tuple(str(v) for v in raw.get("versus", ["lsh", "ivfpq"]))
    for name in (focus, *versus):
        method_class(name)
    if focus in versus or not versus:
        raise ValueError(f"{path}: versus={list(versus)} must name at least one method other than focus={focus!r}")
    rounds = raw.get("rounds", 7)
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"{path}: rounds={rounds!r}: allowed an integer >= 1")
    tol = raw.get("tolerances") or {}
    known = {f.name for f in fields(Tolerances)}
    if not isinstance(tol, dict) or not set(tol) <= known:
        raise ValueError(f"{path}: tolerances: allowed fields {sorted(known)}")
    try:
        tolerances = Tolerances(**{k: str(v) if k == "hit_rate_rule" else float(v) for k, v in tol.items()})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    compiled = tuple(_compiled_entry(entry, f"{path}: compiled[{i}]")
                     for i, entry in enumerate(raw.get("compiled") or []))
    return Scenario(config, focus, versus, rounds, tolerances, str(path), compiled)


def _compiled_entry(entry: object, where: str) -> dict:
    """One ``compiled`` entry checked: a hash-table method, its build and one query point."""
    if not isinstance(entry, dict) or set(entry) != {"method", "build", "query"}:
        raise ValueError(f"{where}: expected a mapping with exactly method, build and query")
    cls = method_class(str(entry["method"]))
    if "kernels" not in cls.build_defaults:
        raise ValueError(f"{where}: method {entry['method']!r} has no 'kernels' build parameter to compare")
    if not isinstance(entry["build"], dict) or "kernels" in entry["build"] or not isinstance(entry["query"], dict):
        raise ValueError(f"{where}: build and query must be mappings, build without 'kernels' (both are timed)")
    return {"method": str(entry["method"]), "build": dict(entry["build"]), "query": dict(entry["query"])}
