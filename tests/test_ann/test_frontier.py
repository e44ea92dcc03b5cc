"""The ANN view's reading of a sweep: the frontier keeps exactly the points no other point of the
method dominates, the Pareto figures draw one frontier per method, and QPS at a recall target is
read at the cheapest point reaching it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.measure.operating_points import pareto_front
from bench.report import figures
from bench.report.tables import ann_table


def dominated(points: pd.DataFrame, i: int, accuracy: str, cost: str) -> bool:
    """Whether another point is at least as good on both measures and better on one."""
    a, c = points.loc[i, accuracy], points.loc[i, cost]
    others = points.drop(index=i)
    return bool(((others[accuracy] >= a) & (others[cost] <= c)
                 & ((others[accuracy] > a) | (others[cost] < c))).any())


@pytest.mark.parametrize("seed", range(5))
def test_the_frontier_keeps_exactly_the_undominated_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = pd.DataFrame({"recall10": rng.random(60), "latency_mean_ms": rng.lognormal(0, 1, 60)})
    front = pareto_front(points, "recall10", "latency_mean_ms")
    expected = {i for i in points.index if not dominated(points, i, "recall10", "latency_mean_ms")}
    assert set(front.index) == expected
    assert front["latency_mean_ms"].is_monotonic_increasing and front["recall10"].is_monotonic_increasing


def test_the_frontier_by_hand_with_ties() -> None:
    points = pd.DataFrame({"exact": [0.5, 0.5, 0.7, 0.6, 0.7, 0.9],
                           "latency_mean_ms": [1.0, 2.0, 2.0, 2.0, 3.0, 5.0]})
    # 1: same rate as 0, slower; 3: same cost as 2, lower rate; 4: same rate as 2, slower
    assert list(pareto_front(points, "exact", "latency_mean_ms").index) == [0, 2, 5]


def test_qps_at_a_recall_target_is_read_at_the_cheapest_point_reaching_it() -> None:
    points = pd.DataFrame({
        "method": ["a", "a", "a", "b", "b"], "label": ["a1", "a2", "a1", "b", "b"],
        "query_params": ["{}", "{}", "{\"x\": 2}", "{}", "{\"x\": 2}"],
        "recall10": [0.85, 0.92, 0.97, 0.5, 0.7], "recall1": [0.9, 0.95, 0.99, 0.6, 0.8],
        "exact": [0.5, 0.55, 0.56, 0.3, 0.4], "latency_mean_ms": [0.1, 0.4, 0.2, 0.05, 0.1]})
    table = ann_table(points, target=0.9).set_index("method")
    assert table.loc["a", "qps"] == pytest.approx(1e3 / 0.2)  # 0.97 at 0.2 ms beats 0.92 at 0.4 ms
    assert table.loc["a", "best_recall"] == 0.97 and table.loc["a", "recall1"] == 0.99
    assert np.isnan(table.loc["b", "qps"]) and table.loc["b", "best_recall"] == 0.7


def _lines(monkeypatch: pytest.MonkeyPatch) -> list:
    drawn: list = []
    original = figures.save

    def spy(fig, out_dir, name):
        drawn.append((name, [line for ax in fig.axes for line in ax.get_lines()
                             if not line.get_label().startswith("_")]))
        return original(fig, out_dir, name)

    monkeypatch.setattr(figures, "save", spy)
    return drawn


def test_pareto_figures_draw_one_frontier_per_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    rows = [{"method": m, "label": f"{m}(c={c})", "param_index": i, "exact": rng.random(), "recall10": rng.random(),
             "latency_mean_ms": rng.lognormal(0, 1), "candidates_mean": 10.0 * (i + 1)}
            for m in ("flowhash", "ivf") for c in range(4) for i in range(5)]
    rows.append({"method": "exhaustive", "label": "exhaustive", "param_index": 0, "exact": 0.9, "recall10": 1.0,
                 "latency_mean_ms": 5.0, "candidates_mean": 1000.0})
    points = pd.DataFrame(rows)
    drawn = _lines(monkeypatch)
    figures.pareto(points, tmp_path, "latency_mean_ms")
    figures.pareto(points, tmp_path, "latency_mean_ms", per_config=True)
    figures.recall_qps(points, tmp_path, target=0.9)
    (one, lines_one), (configs, lines_configs), (ann, lines_ann) = drawn
    assert (one, configs, ann) == ("pareto_latency", "pareto_latency_configs", "recall10_qps")
    # one line per method and the reference star; one per build configuration in the secondary figure;
    # the recall figure adds its target line
    assert len(lines_one) == 3 and len(lines_configs) == 9 and len(lines_ann) == 4
    flow = next(line for line in lines_one if line.get_label().startswith("flowhash"))
    front = pareto_front(points[points["method"] == "flowhash"], "exact", "latency_mean_ms")
    np.testing.assert_allclose(flow.get_xdata(), front["latency_mean_ms"])
    assert (tmp_path / "pareto_latency_configs.png").exists()
