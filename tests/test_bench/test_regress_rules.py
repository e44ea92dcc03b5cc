"""The regression check's hit-rate rules on planted per-query outcomes: the paired rule passes
unchanged and balanced changes, fails a loss larger than chance, and falls back to points."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.regress.decide import (
    DEFAULT_BASELINE,
    BaselineError,
    compare,
    environment_differences,
    load_baseline,
    verdict_summary,
)
from bench.regress.measure import CANDIDATE_SPEEDUP, HIT_RATE, Measurement, Metric
from bench.regress.scenario import Tolerances, load_scenario
from bench.run.environment import environment

N = 600


def _bits(hits: np.ndarray) -> str:
    return "".join("1" if h else "0" for h in hits)


def _baseline(hits: np.ndarray, with_bits: bool = True) -> dict:
    detail = {"exact_bits": _bits(hits), "cell_sizes": [N // 2, N // 2]} if with_bits else {}
    return {"metrics": {"hit_rate m all": {"kind": HIT_RATE, "value": 100 * hits.mean(), "n": len(hits),
                                           "detail": detail}}}


def _now(hits: np.ndarray) -> Measurement:
    metric = Metric(HIT_RATE, 100 * hits.mean(), len(hits), {"exact_bits": _bits(hits), "cell_sizes": [N // 2, N // 2]})
    return Measurement({"hit_rate m all": metric}, {})


def _flip(hits: np.ndarray, lose: int, gain: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = hits.copy()
    out[rng.choice(np.flatnonzero(hits), lose, replace=False)] = False
    out[rng.choice(np.flatnonzero(~hits), gain, replace=False)] = True
    return out


@pytest.fixture
def hits() -> np.ndarray:
    return np.random.default_rng(1).random(N) < 0.6


@pytest.mark.parametrize("lose, gain, verdict", [
    (0, 0, "ok"),
    (3, 0, "ok"),          # 0.5 points: under the 1-point floor
    (15, 15, "ok"),        # as many gained as lost
    (9, 2, "ok"),          # a 1.2-point loss the changed queries cannot tell from chance
    (25, 0, "REGRESSED"),  # 4.2 points, every changed query lost
    (0, 25, "improved"),
])
def test_paired_rule(hits: np.ndarray, lose: int, gain: int, verdict: str) -> None:
    [row] = compare(_baseline(hits), _now(_flip(hits, lose, gain)), Tolerances(hit_rate_rule="paired"))
    assert row.verdict == verdict, row
    assert row.allowed.startswith("paired d ")


def test_the_points_rule_fails_a_small_balanced_loss_the_paired_rule_lets_pass(hits: np.ndarray) -> None:
    now = _now(_flip(hits, 20, 10))  # -1.7 points
    [points] = compare(_baseline(hits), now, Tolerances(hit_rate_rule="points"))
    [paired] = compare(_baseline(hits), now, Tolerances(hit_rate_rule="paired"))
    assert points.verdict == "REGRESSED" and paired.verdict == "ok"


def test_a_baseline_without_per_query_hits_is_judged_by_points(hits: np.ndarray) -> None:
    [row] = compare(_baseline(hits, with_bits=False), _now(_flip(hits, 25, 0)), Tolerances())
    assert row.verdict == "REGRESSED" and row.allowed.startswith(">= ")


def test_unknown_rule_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="hit_rate_rule='bootstrap': allowed paired, points"):
        Tolerances(hit_rate_rule="bootstrap")


# ------------------------------------------------------------------- a baseline covers what the scenario measures


def _baseline_of(metrics: dict[str, Metric]) -> dict:
    return {"metrics": {name: {"kind": m.kind, "value": m.value, "n": m.n, "detail": {}}
                        for name, m in metrics.items()}}


HIT = Metric(HIT_RATE, 80.0, 100)
SPEED = Metric(CANDIDATE_SPEEDUP, 3.0)


def test_a_metric_measured_now_but_not_in_the_baseline_fails() -> None:
    baseline = _baseline_of({"hit_rate m all": HIT})
    now = Measurement({"hit_rate m all": HIT, "candidate_speedup m over r": SPEED}, {})
    rows = compare(baseline, now, Tolerances())
    failing = {r.metric: r.verdict for r in rows if r.regressed}
    assert failing == {"candidate_speedup m over r": "NOT IN BASELINE"}
    lines, failed = verdict_summary(rows, DEFAULT_BASELINE)
    assert failed
    assert "REGRESSION: candidate_speedup m over r: measured now (3) but not in the baseline" in lines
    assert lines[-1] == (f"1 metric(s) fail against {DEFAULT_BASELINE}; measured now but not in it: "
                         "['candidate_speedup m over r']. If the change is intended, record it: "
                         "python -m bench regress --update -m 'why'")
    covered = compare(baseline, Measurement({"hit_rate m all": HIT}, {}), Tolerances())
    assert verdict_summary(covered, DEFAULT_BASELINE) == (["no regression (1 metrics checked)"], False)


def test_a_baseline_metric_no_longer_measured_fails_naming_it() -> None:
    baseline = _baseline_of({"hit_rate m all": HIT, "candidate_speedup m over r": SPEED})
    rows = compare(baseline, Measurement({"hit_rate m all": HIT}, {}), Tolerances())
    assert {r.metric: r.verdict for r in rows if r.regressed} == {"candidate_speedup m over r": "NO LONGER MEASURED"}
    lines, failed = verdict_summary(rows, Path("ci.json"))
    assert failed and "REGRESSION: candidate_speedup m over r: in the baseline (3) but no longer measured" in lines
    assert "no longer measured: ['candidate_speedup m over r']" in lines[-1]
    assert lines[-1].endswith("record it: python -m bench regress --baseline ci.json --update -m 'why'")


def test_a_baseline_without_metrics_is_refused(tmp_path: Path) -> None:
    scenario = load_scenario()
    path = tmp_path / "ci.json"
    path.write_text(json.dumps({"format": 1, "metrics": {}, "scenario": scenario.identity(),
                                "scenario_hash": scenario.hash(), "made": {}}))
    with pytest.raises(BaselineError) as err:
        load_baseline(path, scenario)
    assert str(err.value) == (f"{path}: field 'metrics' is empty, so nothing would be compared; re-create it with: "
                              f"python -m bench regress --baseline {path} --update -m 'why'")



def test_a_check_in_another_environment_names_the_baseline_s_cpu_and_libraries_beside_its_own() -> None:
    here = environment()
    assert environment_differences(here, here) == []
    committed = json.loads(DEFAULT_BASELINE.read_text())["made"]["environment"]
    elsewhere = {**here, "cpu": committed["cpu"] + " (another)",
                 "libraries": {**here["libraries"], "numpy": "0.0-other"}}
    lines = environment_differences(elsewhere, here)
    assert lines[0] == f"note: the baseline was measured with CPU {elsewhere['cpu']!r}, this check with {here['cpu']!r}"
    assert f"numpy 0.0-other -> {here['libraries']['numpy']}" in lines[1] and "torch" not in lines[1]
    assert "deterministic metrics" in lines[-1] and len(lines) == 3
    assert environment_differences({}, here) == []  # a baseline that recorded no environment: nothing to say
