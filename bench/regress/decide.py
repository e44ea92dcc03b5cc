"""The committed regression baseline (``reports/baselines/ci.json``) and the comparison against it."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure.uncertainty import LEVEL, paired_difference
from bench.run.environment import environment
from bench.run.store import now
from datasets.cache import atomic_write_json

from .measure import (
    CANDIDATE_SPEEDUP,
    ENTROPY,
    EXPECTED_SIZE,
    HIT_RATE,
    KERNEL_SPEEDUP,
    LATENCY_SPEEDUP,
    Measurement,
    Metric,
)
from .scenario import Scenario, Tolerances

BASELINE_FORMAT = 1
DEFAULT_BASELINE = Path("reports/baselines/ci.json")
KINDS = (HIT_RATE, CANDIDATE_SPEEDUP, LATENCY_SPEEDUP, KERNEL_SPEEDUP, EXPECTED_SIZE, ENTROPY)


class BaselineError(ValueError):
    """The baseline file is missing, malformed or was made for another scenario."""


def _update_hint(path: Path) -> str:
    return f"create it with: python -m bench regress --baseline {path} --update -m 'why'"


def load_baseline(path: Path | str, scenario: Scenario) -> dict:
    """Read and check a baseline file made for ``scenario``; errors say what is wrong and how to fix it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"baseline file {path} does not exist; {_update_hint(path)}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: not valid JSON ({exc}); restore it from git or {_update_hint(path)}") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{path}: expected a JSON object")
    if data.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"{path}: field 'format' is {data.get('format')!r}; this version reads {BASELINE_FORMAT}")
    for key, kind in (("metrics", dict), ("scenario", dict), ("scenario_hash", str), ("made", dict)):
        if not isinstance(data.get(key), kind):
            raise BaselineError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    if not data["metrics"]:
        raise BaselineError(f"{path}: field 'metrics' is empty, so nothing would be compared; re-create it with: "
                            f"python -m bench regress --baseline {path} --update -m 'why'")
    for name, m in data["metrics"].items():
        if not isinstance(m, dict) or m.get("kind") not in KINDS:
            raise BaselineError(f"{path}: metrics[{name!r}] needs 'kind' (one of {list(KINDS)}) and a numeric 'value'")
        value = m.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BaselineError(f"{path}: metrics[{name!r}].value is {value!r}; it must be a finite number (a NaN "
                                f"or non-numeric baseline would pass every check). Restore the file from git or "
                                f"{_update_hint(path)}")
    if data["scenario_hash"] != scenario.hash():
        changed = sorted(k for k in set(data["scenario"]) | set(scenario.identity())
                         if data["scenario"].get(k) != scenario.identity().get(k))
        raise BaselineError(f"{path} was made for another scenario (hash {data['scenario_hash']}, now "
                            f"{scenario.hash()} from {scenario.source}; differing fields: {changed}); "
                            f"re-create it with: python -m bench regress --update -m 'why'")
    return data


def write_baseline(path: Path | str, measurement: Measurement, scenario: Scenario, message: str) -> dict:
    """Write ``measurement`` as the new baseline, recording why, the commit and the environment."""
    path = Path(path)
    if not message or not message.strip():
        raise ValueError("--update needs a message: -m 'why the baseline changes'")
    history = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
            history = list(old.get("history", [])) + [{k: old["made"].get(k) for k in ("date", "message", "git")}]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            history = []
    env = environment()
    data = {"format": BASELINE_FORMAT, "scenario_hash": scenario.hash(), "scenario": scenario.identity(),
            "made": {"date": now(), "message": message.strip(), "git": env["git"], "environment": env,
                     "measured": {k: v for k, v in measurement.info.items() if k not in ("environment", "scenario")}},
            "tolerances_then": scenario.tolerances.__dict__,
            "metrics": measurement.to_dict()["metrics"], "history": history}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)
    return data


REGRESSED, NO_LONGER_MEASURED, NOT_IN_BASELINE = "REGRESSED", "NO LONGER MEASURED", "NOT IN BASELINE"


@dataclass(frozen=True)
class Verdict:
    """One row of the comparison table."""

    metric: str
    baseline: float
    now: float
    allowed: str
    verdict: str

    @property
    def regressed(self) -> bool:
        """Whether this row fails the check."""
        return self.verdict in (REGRESSED, NO_LONGER_MEASURED, NOT_IN_BASELINE)


def _bounds(kind: str, base: float, n: int | None, tol: Tolerances) -> tuple[float, float, bool]:
    """The worst acceptable value, the value beyond which a change counts as an improvement (the
    tolerance mirrored), and whether higher is better."""
    if kind == HIT_RATE:
        step = max(tol.hit_rate_drop_points, 100.0 / n if n else 0.0)
        return base - step, base + step, True
    if kind in (CANDIDATE_SPEEDUP, LATENCY_SPEEDUP, KERNEL_SPEEDUP):
        ratio = {CANDIDATE_SPEEDUP: tol.candidate_speedup_min_ratio, LATENCY_SPEEDUP: tol.latency_speedup_min_ratio,
                 KERNEL_SPEEDUP: tol.kernel_speedup_min_ratio}[kind]
        return base * ratio, base / ratio if ratio > 0 else math.inf, True
    if kind == EXPECTED_SIZE:
        ratio = tol.expected_size_max_ratio
        return base * ratio, base / ratio if ratio > 0 else 0.0, False
    return base - tol.entropy_drop, base + tol.entropy_drop, True


def _bits(detail: dict | None) -> np.ndarray | None:
    bits = (detail or {}).get("exact_bits")
    return None if not isinstance(bits, str) else np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")


def paired_verdict(b: dict, m: Metric, tol: Tolerances) -> tuple[str, str] | None:
    """The ``paired`` rule on one hit rate: (allowed, verdict), or None where either side lacks
    per-query hits of the same queries (the ``points`` rule then applies)."""
    base_bits, now_bits = _bits(b.get("detail")), _bits(m.detail)
    if base_bits is None or now_bits is None or len(base_bits) != len(now_bits) or not len(now_bits):
        return None
    sizes = (b.get("detail") or {}).get("cell_sizes") or [len(now_bits)]
    if sum(sizes) != len(now_bits) or sizes != (m.detail.get("cell_sizes") or [len(now_bits)]):
        return None
    cells = np.repeat(np.arange(len(sizes)), sizes)
    paired = paired_difference(now_bits, base_bits, cells)
    diff, p = paired.difference, paired.mcnemar_p
    d, lo, hi = 100 * diff.estimate, 100 * diff.low, 100 * diff.high
    floor = tol.hit_rate_drop_points
    allowed = (f"paired d {d:+.2f} [{lo:+.2f}, {hi:+.2f}], McNemar p {p:.2g}: "
               f"fails if d < -{floor:g}, CI < 0 and p < {1 - LEVEL:g}")
    significant = p < 1 - LEVEL
    if d < -floor - 1e-9 and hi < 0 and significant:
        return allowed, "REGRESSED"
    if d > floor + 1e-9 and lo > 0 and significant:
        return allowed, "improved"
    return allowed, "ok"


def compare(baseline: dict, measurement: Measurement, tol: Tolerances) -> list[Verdict]:
    """Every baseline metric against its measured value, then the metrics the baseline lacks.

    Verdicts: ``ok``; ``improved`` (better by more than the tolerance: worth an ``--update``); and
    the failing ones: ``REGRESSED`` (worse than the tolerance allows), ``NO LONGER MEASURED`` (in
    the baseline only) and ``NOT IN BASELINE`` (measured now, never recorded: nothing guards it).
    Hit rates follow ``tol.hit_rate_rule`` (paired, where both sides kept per-query hits).
    """
    rows = []
    for name, b in baseline["metrics"].items():
        base = float(b["value"])
        worst, best, higher = _bounds(b["kind"], base, b.get("n"), tol)
        allowed = f"{'>=' if higher else '<='} {worst:.4g}"
        m: Metric | None = measurement.metrics.get(name)
        if m is None or not math.isfinite(m.value):
            rows.append(Verdict(name, base, math.nan if m is None else m.value, allowed,
                                NO_LONGER_MEASURED if m is None else ("ok" if not math.isfinite(base) else REGRESSED)))
            continue
        paired = paired_verdict(b, m, tol) if b["kind"] == HIT_RATE and tol.hit_rate_rule == "paired" else None
        if paired is not None:
            rows.append(Verdict(name, base, m.value, *paired))
            continue
        if (m.value < worst - 1e-9) if higher else (m.value > worst + 1e-9):
            verdict = REGRESSED
        elif (m.value > best + 1e-9) if higher else (m.value < best - 1e-9):
            verdict = "improved"
        else:
            verdict = "ok"
        rows.append(Verdict(name, base, m.value, allowed, verdict))
    for name, m in measurement.metrics.items():
        if name not in baseline["metrics"]:
            rows.append(Verdict(name, math.nan, m.value, "-", NOT_IN_BASELINE))
    return rows


def environment_differences(made: dict, now_env: dict) -> list[str]:
    """One line for each way this check's environment differs from the baseline's (the CPU model,
    Python, a library's version), since a fit's float sums round differently on another CPU kind
    and the "deterministic" metrics can then move a little; none when they match."""
    lines = []
    for key, what in (("cpu", "CPU"), ("python", "Python")):
        if made.get(key) and now_env.get(key) and made[key] != now_env[key]:
            lines.append(f"note: the baseline was measured with {what} {made[key]!r}, this check with {now_env[key]!r}")
    before, after = made.get("libraries") or {}, now_env.get("libraries") or {}
    moved = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    if moved:
        lines.append("note: library versions differ from the baseline's: "
                     + ", ".join(f"{name} {before[name]} -> {after[name]}" for name in moved))
    if lines:
        lines.append("note: deterministic metrics (hit rates, candidate speedups, balance) reproduce bit for bit "
                     "only in the same environment; elsewhere they can move within their tolerances "
                     "(docs/regression.md)")
    return lines


def verdict_summary(rows: list[Verdict], path: Path) -> tuple[list[str], bool]:
    """The lines printed under the comparison table (one per failing metric, then the outcome), and
    whether the check fails."""
    bad = [r for r in rows if r.regressed]
    lines = []
    for r in bad:
        if r.verdict == NOT_IN_BASELINE:
            lines.append(f"REGRESSION: {r.metric}: measured now ({r.now:.4g}) but not in the baseline")
        elif r.verdict == NO_LONGER_MEASURED:
            lines.append(f"REGRESSION: {r.metric}: in the baseline ({r.baseline:.4g}) but no longer measured")
        else:
            lines.append(f"REGRESSION: {r.metric}: baseline {r.baseline:.4g}, now {r.now:.4g} (allowed {r.allowed})")
    if bad:
        gaps = "".join(f"; {what}: {[r.metric for r in bad if r.verdict == verdict]}"
                       for verdict, what in ((NOT_IN_BASELINE, "measured now but not in it"),
                                             (NO_LONGER_MEASURED, "no longer measured"))
                       if any(r.verdict == verdict for r in bad))
        where = "" if Path(path) == DEFAULT_BASELINE else f" --baseline {path}"
        lines.append(f"{len(bad)} metric(s) fail against {path}{gaps}. If the change is intended, record it: "
                     f"python -m bench regress{where} --update -m 'why'")
        return lines, True
    improved = [r.metric for r in rows if r.verdict == "improved"]
    lines.append(f"no regression ({len(rows)} metrics checked)"
                 + (f"; improved beyond tolerance: {json.dumps(improved)} (consider --update)" if improved else ""))
    return lines, False


def verdict_table(rows: list[Verdict]) -> str:
    """The comparison as a fixed-width table."""
    df = pd.DataFrame([r.__dict__ for r in rows])
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_colwidth", 80):
        return df.to_string(index=False, float_format=lambda x: f"{x:.4g}")
