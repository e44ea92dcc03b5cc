"""The regression check's hit-rate rules on planted per-query outcomes: the paired rule passes
unchanged and balanced changes, fails a loss larger than chance, and falls back to points."""
from __future__ import annotations

import numpy as np
import pytest

from bench.regress.baseline import compare
from bench.regress.check import HIT_RATE, Measurement, Metric
from bench.regress.scenario import Tolerances

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
