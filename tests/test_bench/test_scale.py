"""The DB-size sweep (``bench scale``) on a tiny synthetic case: nested DBs grown by labelled
distractors, exhaustive's work exactly proportional to N, resumption, the build budget, the report,
and clear errors for bad configs."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.cli.main import build_parser, main
from bench.report.scale_report import write_scale_report
from bench.run.retime import select_compared
from bench.run.store import RunStore, RunStoreError
from bench.scale.config import scale_config_from_dict
from bench.scale.sweep import STATUS_OVER_BUDGET, run_scale
from datasets.distractors import FILL_SOURCE
from tests.helpers import TINY


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scale-cache")


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory, module_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(module_cache))
        root = tmp_path_factory.mktemp("scale") / "run"
        config = scale_config_from_dict(copy.deepcopy(TINY), "tiny")
        outcome = run_scale(config, root, progress=False)
        yield config, outcome, root


@pytest.fixture
def shared_cache(module_cache, monkeypatch):
    """The module's cache (corpus, query set, embeddings, store) instead of the test's empty one."""
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(module_cache))


@pytest.mark.slow
def test_the_db_grows_by_labelled_distractors_and_exhaustive_work_is_exactly_n(scale_run):
    _, outcome, _ = scale_run
    pts, info = outcome.points, outcome.info
    sizes = info["sizes"]
    assert len(sizes) == 3 and sizes[1] == 2500 and sizes[0] < 2500 < sizes[2]
    base = info["db"]["base_segments"]
    assert sizes[0] == base
    for facts in info["db"]["sizes"]:
        assert facts["corpus_segments"] == base
        assert facts["distractor_segments"] == facts["n_db"] - base
        assert facts["synthetic_distractor_segments"] == facts["distractor_segments"]  # real music was off
        assert facts["real_distractor_segments"] == 0
    exh = pts[pts["method"] == "exhaustive"].set_index("n_db")
    segments = info["queryset"]["query_segments"] / info["queryset"]["queries"]
    for n in sizes:
        assert exh.loc[n, "candidates_mean"] == pytest.approx(n * segments)
        assert (pts.loc[pts["n_db"] == n, "real_distractor_segments"] == 0).all()
    assert set(pts["n_db"]) == set(sizes)
    assert set(pts["method"]) == {"exhaustive", "flowhash", "lsh-directed"}
    assert info["distractors"]["sources"] == {FILL_SOURCE: "synth"}


@pytest.mark.slow
def test_queries_come_only_from_the_corpus_and_the_time_level_contains_exact(scale_run):
    _, outcome, root = scale_run
    outcomes = pd.read_parquet(root / "outcomes.parquet")
    assert (outcomes["time"] >= outcomes["exact"]).all()  # at a 0.25 s hop the nearest segment is within 0.125 s
    assert not outcomes["query_id"].str.contains(FILL_SOURCE).any()
    results = outcome.results
    assert {"time", "exact", "near", "track"} <= set(results.columns)


@pytest.mark.slow
def test_the_report_tables_and_figures_are_written(scale_run):
    _, _, root = scale_run
    md = write_scale_report(root)
    text = md.read_text()
    for section in ("The DB at each size", "Growth exponents", "Extrapolated, not measured"):
        assert section in text
    growth = pd.read_csv(root / "growth.csv")
    growth = growth[growth["point"] == "matched"].set_index("method")
    assert growth.loc["exhaustive", "a_candidates_mean"] == pytest.approx(1.0, abs=1e-9)
    assert "highest hit rate FlowHash reaches at every N" in text
    assert "| N | fit s | build s | accuracy passes s | latency timing s | re-timing s | total s |" in text
    assert (root / "figures" / "latency_vs_n_target.png").is_file()
    extra = pd.read_csv(root / "extrapolation.csv")
    assert extra["extrapolated"].all() and set(extra["n_db"]) == {10_000_000, 100_000_000}
    for name in ("latency_vs_n", "candidates_vs_n", "hit_rate_vs_n", "build_memory_vs_n"):
        assert (root / "figures" / f"{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_bench_report_rebuilds_a_scaling_report(scale_run, capsys):
    _, _, root = scale_run
    (root / "report.md").unlink(missing_ok=True)
    assert main(["report", str(root)]) == 0
    assert (root / "report.md").is_file() and "report.md" in capsys.readouterr().out
    assert main(["report", str(root), "--latency-budget-ms", "3"]) == 2
    assert "is a scaling run" in capsys.readouterr().err


@pytest.mark.slow
def test_the_compared_points_are_retimed_interleaved_at_every_size(scale_run):
    _, outcome, root = scale_run
    outcomes, points = pd.read_parquet(root / "outcomes.parquet"), pd.read_parquet(root / "points.parquet")
    timing = outcome.info["config"]["run"]["timing"]
    for n in outcome.info["sizes"]:
        at = points[(points["n_db"] == n) & (points["status"] == "ok")]
        chosen = select_compared(at)
        assert len(chosen) and "exhaustive" not in set(chosen["method"])
        retimed = at.dropna(subset=["retimed_mean_ms"])
        assert sorted(zip(retimed["label"], retimed["query_params"])) == sorted(zip(chosen["label"],
                                                                                   chosen["query_params"]))
        rows = outcomes[(outcomes["n_db"] == n) & outcomes["retimed_ms"].notna()]
        assert len(rows) == len(chosen) * min(timing["latency_queries"], outcome.info["queryset"]["queries"])
        assert rows["latency_ms"].notna().all()  # the re-timed queries are the sweep's timed ones
    part = RunStore(root).part_key("N=%d retimed" % outcome.info["sizes"][0])
    frame = pd.read_parquet(root / "parts" / f"{part}.outcomes.parquet")
    reps = [c for c in frame if c.startswith("retimed_rep")]
    assert len(reps) == 3 and (frame[reps] > 0).all().all()  # every round kept
    assert np.allclose(frame["retimed_ms"], np.median(frame[reps], axis=1))


@pytest.mark.slow
def test_a_rerun_reuses_every_finished_part(scale_run, shared_cache, capsys):
    config, outcome, root = scale_run
    again = run_scale(config, root, progress=False)
    out = capsys.readouterr().out
    retimed = out.count("retimed: done in an earlier run, skipped")
    assert retimed == len(outcome.info["sizes"])  # the re-timing is a part too, reused as it stands
    assert out.count("done in an earlier run, skipped") - retimed == len(outcome.info["labels"])
    cols = ["label", "n_db", "query_params", "exact", "candidates_mean"]
    pd.testing.assert_frame_equal(again.points[cols].reset_index(drop=True),
                                  outcome.points[cols].reset_index(drop=True))


@pytest.mark.slow
def test_a_folder_takes_more_or_fewer_methods_but_not_changed_ones(scale_run, shared_cache, tmp_path, capsys):
    config, outcome, root = scale_run
    folder = tmp_path / "run"
    shutil.copytree(root, folder)
    raw = copy.deepcopy(TINY)
    raw["methods"] = [*raw["methods"], "pca-sign"]
    raw["run"]["grids"]["pca-sign"] = {"build": [{}], "query": [{"n_probes": 4}]}
    capsys.readouterr()
    grown = run_scale(scale_config_from_dict(raw, "tiny"), folder, progress=False)
    out = capsys.readouterr().out
    assert out.count("done in an earlier run, skipped") - out.count("retimed:") == len(outcome.info["labels"])
    assert set(grown.points["method"]) == {*outcome.points["method"], "pca-sign"}
    changed = copy.deepcopy(raw)
    changed["run"]["grids"]["lsh-directed"]["query"] = [{"n_probes": 2}]
    with pytest.raises(RunStoreError, match=r"differs: config\.run\.grids\.lsh-directed\.query"):
        run_scale(scale_config_from_dict(changed, "tiny"), folder, progress=False)
    fewer = copy.deepcopy(raw)
    fewer["methods"] = ["flowhash", "pca-sign"]
    del fewer["run"]["grids"]["lsh-directed"]
    capsys.readouterr()
    shrunk = run_scale(scale_config_from_dict(fewer, "tiny"), folder, progress=False)
    assert "lsh-directed" not in capsys.readouterr().out
    assert set(shrunk.points["method"]) == {"exhaustive", "flowhash", "pca-sign"}


@pytest.mark.slow
def test_pairs_retime_the_focus_beside_each_other_method_in_a_part_of_its_own(scale_run, shared_cache, tmp_path,
                                                                            capsys):
    _, outcome, root = scale_run
    folder = tmp_path / "run"
    shutil.copytree(root, folder)
    raw = copy.deepcopy(TINY)
    raw["methods"] = [*raw["methods"], "pca-sign"]
    raw["run"]["grids"]["pca-sign"] = {"build": [{"K": 8}], "query": [{"n_probes": 8}, {"n_probes": 64}]}
    raw["run"]["timing"]["interleave"] = "pairs"
    capsys.readouterr()
    paired = run_scale(scale_config_from_dict(raw, "tiny"), folder, progress=False)
    out = capsys.readouterr().out  # the sweep's parts stand: the grouping is no part of the run's identity
    assert out.count("done in an earlier run, skipped") - out.count("retimed") == len(outcome.info["labels"])
    store, points = RunStore(folder), pd.read_parquet(folder / "points.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    method_of = dict(zip(points["label"], points["method"]))
    assert outcomes["retimed_ms"].isna().all()  # the one group's timing of the first run is not read
    for n in paired.info["sizes"]:
        chosen = select_compared(points[(points["n_db"] == n) & (points["status"] == "ok")])
        assert {"flowhash", "lsh-directed", "pca-sign"} <= set(chosen["method"])
        for other in ("lsh-directed", "pca-sign"):
            part = store.part_table(f"N={n} retimed beside {other}", "outcomes")
            timed = {method_of[label] for label in part["label"]}
            assert timed == {"flowhash", other}
            assert (part.loc[part["label"].map(method_of) == other, "beside"] == "flowhash").all()
            at = outcomes[outcomes["n_db"] == n]
            own = at["label"].map(method_of)
            # each side's latencies under the column named for the other side, on its compared points only
            assert at.loc[own != "flowhash", f"retimed_ms:{other}"].isna().all()
            assert at.loc[own == other, "retimed_ms:flowhash"].notna().sum() == len(part[part["beside"] == "flowhash"])
            assert at[f"retimed_ms:{other}"].notna().sum() == len(part[part["beside"] == other])


@pytest.mark.slow
def test_a_build_over_budget_is_recorded_not_left_out(scale_run, shared_cache, tmp_path):
    raw = copy.deepcopy(TINY)
    raw.update({"methods": ["lsh-directed"], "build_budget_s": 1e-9, "sizes": ["base", 2500]})
    out = run_scale(scale_config_from_dict(raw, "budget"), tmp_path / "run", progress=False)
    skipped = out.points[out.points["status"] == STATUS_OVER_BUDGET]
    assert set(skipped["n_db"]) == {2500}
    assert set(skipped["method"]) == {"exhaustive", "lsh-directed"}
    assert skipped["status_detail"].str.contains("over the 0 s budget").all()
    assert np.isfinite(out.points.loc[out.points["status"] == "ok", "latency_mean_ms"]).all()


@pytest.mark.parametrize("change, message", [
    ({"sizes": [3000, 2000]}, "must rise strictly"),
    ({"sizes": ["max", 3000]}, "'max' \\(if any\\) last"),
    ({"sizes": [3000, "base"]}, "'base' \\(if any\\) first"),
    ({"sizes": [0]}, "sizes\\[0\\]: expected a positive integer"),
    ({"methods": ["minhash"]}, "searches spectral images"),
    ({"methods": ["nosuch"]}, "nosuch"),
    ({"distractors": {"real": "yes"}}, "distractors"),
    ({"bogus": 1}, "unknown field"),
    ({"run": {**TINY["run"], "timing": {**TINY["run"]["timing"], "interleave": "trios"}}},
     "timing.interleave='trios': allowed all, pairs"),
])
def test_bad_configs_are_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        scale_config_from_dict({**copy.deepcopy(TINY), **change}, "tiny")


def test_sizes_outside_the_db_are_clear_errors():
    config = scale_config_from_dict({**copy.deepcopy(TINY), "sizes": [10, 5000, "max"]}, "tiny")
    with pytest.raises(ValueError, match="sizes\\[0\\] = 10: below the 700 segments"):
        config.resolve_sizes(700, 4000)
    with pytest.raises(ValueError, match="sizes\\[1\\] = 5000: more than the 4000 segments"):
        config.resolve_sizes(5, 4000)
    assert config.resolve_sizes(5, 6000) == [10, 5000, 6000]


def test_cli_help_and_a_bad_config_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["scale", "--help"])
    assert "--sizes" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("sizes: [base]\nmethods: [nosuch]\n")
    assert main(["scale", "--config", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "nosuch" in capsys.readouterr().err


# --------------------------------------------------------------------------- --sizes takes the config file's words


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "scale.yml"
    path.write_text(yaml.safe_dump({"run": {"corpus": "synth"}, "sizes": ["base", 5000], "methods": ["flowhash"]}))
    return path


def test_sizes_base_and_max_are_taken_on_the_command_line(config_file: Path, tmp_path: Path, capsys) -> None:
    # --methods nosuch stops the command once its options are read, before any data is built
    argv = ["scale", "--config", str(config_file), "--run-dir", str(tmp_path / "run"),
            "--sizes", "base", "2_500", "max", "--methods", "nosuch"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nosuch'" in err and "sizes[" not in err and "expected a segment count" not in err

    from bench.cli.scale import scale_config

    args = build_parser().parse_args(["scale", "--config", str(config_file), "--sizes", "base", "2_500", "max"])
    config = scale_config(args)
    assert config.sizes == ("base", 2500, "max") and config.methods == ("exhaustive", "flowhash")
    assert scale_config(build_parser().parse_args(["scale", "--config", str(config_file)])).sizes == ("base", 5000)


@pytest.mark.parametrize("sizes, message", [
    (["bass"], "sizes[0]: expected a positive integer, 'base' or 'max', got 'bass'"),
    (["max", "base"], "must rise strictly, with 'base' (if any) first and 'max' (if any) last"),
])
def test_bad_sizes_on_the_command_line_are_the_config_file_errors(config_file: Path, tmp_path: Path,
                                                                   sizes: list[str], message: str, capsys) -> None:
    assert main(["scale", "--config", str(config_file), "--run-dir", str(tmp_path / "run"), "--sizes", *sizes]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config_file} with --sizes: sizes") and message in err
