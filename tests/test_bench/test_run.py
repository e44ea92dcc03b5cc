"""`bench run` end to end on small real data: results, run.json, resume, consistency, bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.measure.operating_points import pareto_front, speedup
from bench.report.summary import format_summary
from bench.report.tables import budget_operating_points, latency_budget
from bench.run.config import RunConfig, load_config
from bench.run.retime import select_compared
from bench.run.runner import accuracy_search, retime_run, run_benchmark
from bench.run.store import RunStoreError
from tests.helpers import QUERIES, TIMING, write_rirs


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A small synth corpus config with folder rooms, and a module-wide cache."""
    root = tmp_path_factory.mktemp("run")
    write_rirs(root / "rirs")
    config = RunConfig(synth_tracks=16, rooms=str(root / "rirs"), queries=QUERIES, train_pairs=300, timing=TIMING,
                       grids={"lsh": {"build": [{"K": 8, "L": 2}], "query": [{"radius": 0}, {"radius": 2}]}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(root / "cache"))
        yield config, root


def test_run_records_results_run_json_and_matches_exact_search(setup) -> None:
    config, root = setup
    config = replace(config, db_splits=("test",))  # the DB of the encoder's own evaluation, to compare
    out = run_benchmark(config, ["lsh"], run_dir=root / "a", progress=False)
    res = pd.read_parquet(root / "a" / "results.parquet")
    assert set(res["method"]) == {"exhaustive", "lsh"}
    assert len(res) == (1 * len(load_grid_query("exhaustive")) + 2) * 8  # points x 8 conditions
    for col in ("exact", "near", "track", "seg_exact", "latency_p50_ms", "latency_p99_ms", "qps",
                "candidates_mean", "fit_s", "build_s", "index_bytes", "duration_s", "snr", "reverb"):
        assert col in res.columns, col
    assert (res["exact"] <= res["near"]).all() and (res["near"] <= res["track"]).all()
    lsh = res[res["method"] == "lsh"]
    assert lsh["balance_expected_vs_random"].notna().all()
    info = json.loads((root / "a" / "run.json").read_text())
    for key in ("config", "environment", "threads", "seed", "encoder", "queryset", "split_overlap", "finished"):
        assert key in info, key
    assert info["environment"]["libraries"]["faiss-cpu"] and info["encoder"]["sha256"] and info["threads"] == 1
    assert info["split_overlap"] == {"db_tracks_in_train": 0, "query_tracks_in_train": 0, "content_tracks": 0,
                                     "content_noise": 0, "content_rooms": 0}

    # the exhaustive reference agrees with the encoder's own exact-search evaluation
    from bench.run.inputs import prepare_inputs
    from encoders.validate import query_outcomes

    inputs = prepare_inputs(config, progress=False)
    outcomes = pd.read_parquet(root / "a" / "outcomes.parquet")
    ref = outcomes[outcomes["label"] == "exhaustive"].set_index("query_id")
    assert (ref["candidates"] == ref["n_segments"] * info["db"]["segments"]).all()
    own = query_outcomes(inputs.encoder, inputs.corpus, inputs.queryset, progress=False).set_index("query_id")
    assert (ref.loc[own.index, "exact"] == own["exact"]).all()
    assert ref["exact"].mean() >= 0.5
    text = format_summary(out.results, out.points, out.info)
    assert "exhaustive" in text and "lsh" in text
    report_ops = budget_operating_points(out.points, latency_budget(out.points)[0])  # report.md's points
    assert "best_under_budget, as in report.md" in text
    assert all(f"{ms:.2f}" in text for ms in report_ops["latency_mean_ms"].round(2))

    # every hit rate carries its 95% interval; every repeat of every timed query is kept
    points = pd.read_parquet(root / "a" / "points.parquet")
    for table in (res, points):
        for level in ("exact", "near", "track"):
            assert (table[f"{level}_lo"] <= table[level] + 1e-12).all()
            assert (table[level] <= table[f"{level}_hi"] + 1e-12).all()
    assert ((points["exact_hi"] - points["exact_lo"]) < (res["exact_hi"] - res["exact_lo"]).min()).all()
    assert (points["latency_mean_lo_ms"] <= points["latency_mean_ms"]).all() and (points["latency_iqr_ms"] >= 0).all()
    timed = ref[ref["latency_ms"].notna()]
    assert len(timed) == TIMING.latency_queries
    reps = timed[[f"latency_rep{r}_ms" for r in range(TIMING.repeats)]].to_numpy()
    np.testing.assert_allclose(np.median(reps, axis=1), timed["latency_ms"])

    # the compared points, exhaustive search's included, are timed again, interleaved, over the same timed queries
    chosen = select_compared(points, skip=())
    assert "exhaustive" in set(chosen["method"])
    retimed = points.dropna(subset=["retimed_mean_ms"])
    assert set(zip(retimed["label"], retimed["query_params"])) == set(zip(chosen["label"], chosen["query_params"]))
    again = outcomes.dropna(subset=["retimed_ms"])
    assert len(again) == len(chosen) * TIMING.latency_queries and again["latency_ms"].notna().all()

    # a run folder without its parts (as committed) is re-timed from its tables alone
    shutil.rmtree(root / "a" / "parts")
    retimed_run = retime_run(config, root / "a", progress=False)
    redone = pd.read_parquet(root / "a" / "outcomes.parquet").dropna(subset=["retimed_ms"])
    assert sorted(set(zip(redone["label"], redone["query_params"]))) == sorted(set(zip(again["label"],
                                                                                       again["query_params"])))
    assert len(redone) == len(again) and retimed_run.points["retimed_mean_ms"].notna().sum() == len(chosen)
    with pytest.raises(RunStoreError, match="differs"):
        retime_run(replace(config, k=5), root / "a", progress=False)


@pytest.mark.slow
def test_a_run_in_pairs_times_flowhash_beside_each_other_method(setup) -> None:
    from bench.run.store import RunStore

    config, root = setup
    timing = replace(config.timing, interleave="pairs")
    grids = {**config.grids, "flowhash": {"build": [{"K": 8, "n_blocks": 1, "max_steps": 5}],
                                          "query": [{"n_probes": 4}, {"n_probes": 64}]}}
    run_benchmark(replace(config, timing=timing, grids=grids), ["flowhash", "lsh"], run_dir=root / "pairs",
                  progress=False)
    outcomes = pd.read_parquet(root / "pairs" / "outcomes.parquet")
    points = pd.read_parquet(root / "pairs" / "points.parquet")
    chosen = select_compared(points, skip=())
    assert {"exhaustive", "flowhash", "lsh"} <= set(chosen["method"])
    method_of = dict(zip(points["label"], points["method"]))
    for other in ("exhaustive", "lsh"):
        part = RunStore(root / "pairs").part_table(f"retimed beside {other}", "outcomes")
        assert {method_of[label] for label in part["label"]} == {"flowhash", other}
        assert outcomes.loc[outcomes["label"].map(method_of) == other, "retimed_ms:flowhash"].notna().any()
        assert outcomes.loc[outcomes["label"].map(method_of) == "flowhash", f"retimed_ms:{other}"].notna().any()
    assert outcomes["retimed_ms"].isna().all()


@pytest.mark.parametrize("name, build, query", [("lsh-directed", {"K": 8, "L": 2}, {"n_probes": 8}),
                                                ("itq", {"K": 8}, {"n_probes": 4}),
                                                ("flowhash", {"K": 8, "n_blocks": 1, "max_steps": 5}, {"n_probes": 4}),
                                                ("exhaustive", {}, {})])
def test_the_accuracy_pass_in_chunks_over_threads_answers_as_one_call(name, build, query, monkeypatch) -> None:
    from bench.run import runner
    from methods import TrainData, get_method

    monkeypatch.setattr(runner, "ACCURACY_CHUNK", 64)  # 301 queries: 5 chunks, the last one short

    rng = np.random.default_rng(0)
    db = rng.standard_normal((3000, 16)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = np.ascontiguousarray(db[:301] + 0.1 * rng.standard_normal((301, 16)).astype(np.float32))
    method = get_method(name, threads=1, **build)
    method.fit(TrainData(db[:1000], np.ascontiguousarray(db[:1000] + 0.05)))
    method.build(db)
    method.set_query_params(**query)
    one = method.search(q, 10)
    split = accuracy_search(method, q, 10, 3)
    for field in ("ids", "scores", "candidates"):
        np.testing.assert_array_equal(getattr(split, field), getattr(one, field))
    assert method.threads == 1


def load_grid_query(name: str) -> list:
    from methods.registry import load_grid

    return load_grid(name)["query"]


def test_finished_methods_survive_and_are_skipped(setup, capsys: pytest.CaptureFixture) -> None:
    config, root = setup
    run_benchmark(config, ["exhaustive"], run_dir=root / "b", progress=False)
    first = pd.read_parquet(root / "b" / "results.parquet")
    capsys.readouterr()
    run_benchmark(config, ["lsh"], run_dir=root / "b", progress=False)
    assert "exhaustive: done in an earlier run, skipped" in capsys.readouterr().out
    second = pd.read_parquet(root / "b" / "results.parquet")
    kept = second[second["method"] == "exhaustive"].reset_index(drop=True)[first.columns]
    pd.testing.assert_frame_equal(first, kept)  # read back from the first run's part, not recomputed


def test_distractors_enter_the_db_only_after_the_run_s_own_rows(setup) -> None:
    from bench.run.inputs import prepare_inputs

    config, root = setup
    assert "distractors" not in config.to_dict()  # runs without them keep their identity
    grown = replace(config, distractors=1500)
    base, inputs = prepare_inputs(config, progress=False), prepare_inputs(grown, progress=False)
    n = len(base.db)
    assert len(inputs.db) == n + 1500 and np.array_equal(inputs.db[:n], base.db)
    pd.testing.assert_frame_equal(inputs.db_segments.iloc[:n], base.db_segments)
    added = inputs.db_segments.iloc[n:]
    assert added["track_id"].str.startswith("synth-distractors:").all() and (added["split"] == "distractor").all()
    assert not set(added["track_id"]) & set(inputs.manifest["track_id"])  # no distractor is a query's answer
    assert np.allclose(np.linalg.norm(inputs.db[n:], axis=1), 1.0, atol=1e-4)
    out = run_benchmark(grown, ["lsh"], run_dir=root / "d", progress=False)
    assert out.info["db"]["segments"] == n + 1500 and out.info["db"]["distractor_segments"] == 1500
    with pytest.raises(ValueError, match="distractors=1500: method minhash searches spectrogram"):
        run_benchmark(grown, ["minhash"], run_dir=root / "e", progress=False)


def test_speedup_reads_matched_hit_rate_off_pareto_curves() -> None:
    a = pd.DataFrame({"exact": [0.5, 0.8, 0.9], "latency_mean_ms": [1.0, 2.0, 4.0]})
    b = pd.DataFrame({"exact": [0.6, 0.85, 0.95], "latency_mean_ms": [3.0, 8.0, 20.0]})
    s = speedup(a, b)
    assert s["hit_rate"] == 0.9 and s["cost_a"] == 4.0 and s["cost_b"] == 20.0 and s["speedup"] == 5.0
    front = pareto_front(pd.DataFrame({"exact": [0.5, 0.4, 0.9], "latency_mean_ms": [1.0, 2.0, 3.0]}))
    assert list(front["exact"]) == [0.5, 0.9]


def test_config_file_errors_name_the_field(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"corpus": "synth", "queries": {"per_cell": 3, "snrs": ["clean", 5]},
                                                    "timing": {"threads": 2}}))
    c = load_config(tmp_path / "c.yml")
    assert c.queries.per_cell == 3 and c.queries.snrs == (None, 5.0) and c.timing.threads == 2
    (tmp_path / "bad.yml").write_text("colour: blue\n")
    with pytest.raises(ValueError, match=r"bad.yml: unknown field\(s\) \['colour'\]"):
        load_config(tmp_path / "bad.yml")
    (tmp_path / "snr.yml").write_text("queries: {snrs: [99]}\n")
    with pytest.raises(ValueError, match=r"snr.yml: queries.snrs\[0\]: SNR 99 dB is out of range"):
        load_config(tmp_path / "snr.yml")


def test_every_committed_config_reads_and_keeps_its_run_s_identity() -> None:
    from bench.regress.scenario import load_scenario
    from bench.scale.config import load_scale_config
    from datasets.cache import stable_hash

    repo = Path(__file__).resolve().parents[2]
    recorded = {name: json.loads((repo / "reports" / name / "run.json").read_text())["config"]
                for name in ("debian-music", "robustness", "scale")}
    for name in ("debian-music", "robustness"):  # the schema reads them to the identity their runs were made under
        assert stable_hash(load_config(repo / "configs" / f"{name}.yml").to_dict()) == stable_hash(recorded[name])
    assert stable_hash(load_scale_config(repo / "configs" / "scale.yml").to_dict()) == stable_hash(recorded["scale"])
    baseline = json.loads((repo / "reports" / "baselines" / "ci.json").read_text())
    assert load_scenario().hash() == baseline["scenario_hash"]
    for path in sorted((repo / "configs").glob("*.yml")):  # every committed config reads
        text = path.read_text()
        assert (load_scale_config(path) if path.name.startswith("scale") else load_config(path)), text[:80]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True)


def test_unknown_method_lists_the_choices() -> None:
    out = run_cli("run", "--method", "nosuch")
    assert out.returncode == 2 and "unknown method 'nosuch'; choices:" in out.stderr and "flowhash" in out.stderr


def test_list_shows_every_method_with_its_grid() -> None:
    out = run_cli("list")
    assert out.returncode == 0
    from methods.registry import load_grid, method_names

    for name in method_names():  # every registered method, with its default build and its sweep
        assert f"\n{name}: " in "\n" + out.stdout, name
        assert f"  build (default): {load_grid(name)['build'][0]}" in out.stdout
    assert "query sweep" in out.stdout


@pytest.mark.slow
def test_run_command_end_to_end_with_flowhash(setup, tmp_path: Path) -> None:
    config, root = setup
    cfg = {"synth_tracks": 16, "rooms": str(root / "rirs"), "train_pairs": 300,
           "queries": {"durations": [1, 2], "snrs": ["clean", 5], "reverbs": ["none", 0.3], "per_cell": 4},
           "timing": {"warmup": 2, "repeats": 1, "latency_queries": 8, "batch_repeats": 1}}
    (tmp_path / "run.yml").write_text(yaml.safe_dump(cfg))
    args = ["run", "--method", "flowhash", "--config", str(tmp_path / "run.yml"), "--out", str(tmp_path / "reports"),
            "--no-progress"]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "flowhash over exhaustive at" in out.stdout and "Top-1 exact hit rate" in out.stdout
    decided = [line for line in out.stdout.splitlines() if line.startswith("flowhash over exhaustive at")
               and "; decision: " in line]
    assert decided and decided[-1].rsplit(": ", 1)[1] in ("faster", "slower", "equivalent within 10%", "undetermined")
    shares = ("(80% of exhaustive)", "(90% of exhaustive)", "(90% of flowhash's best)")
    assert [share for share in shares if any(share in d for d in decided)] == list(shares)
    (run_dir,) = (tmp_path / "reports").iterdir()
    report = (run_dir / "report.md").read_text()
    assert "of exhaustive) | exhaustive |" in report  # the decided table, a row per target and rival
    res = pd.read_parquet(run_dir / "results.parquet")
    assert {"exhaustive", "flowhash"} == set(res["method"])
    again = run_cli(*args)
    assert again.returncode == 0 and "done in an earlier run, skipped" in again.stdout


def test_a_fitted_configuration_is_loaded_not_trained_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.run import fit_cache
    from methods import TrainData, get_method

    monkeypatch.setattr(fit_cache, "MIN_KEPT_FIT_S", 0.0)
    rng = np.random.default_rng(4)
    anchors = rng.standard_normal((600, 16)).astype(np.float32)
    train = TrainData(anchors, (anchors + 0.1 * rng.standard_normal(anchors.shape)).astype(np.float32))
    params = {"K": 6, "epochs": 2, "patience": 0, "hidden": 16, "n_blocks": 2}

    def fit(p: dict, data: TrainData) -> tuple:
        return fit_cache.cached_fit(get_method("flowhash", **p), "flowhash", p, data)

    first, first_s, first_hit = fit(params, train)
    again, again_s, again_hit = fit(params, train)
    assert (first_hit, again_hit) == (False, True)
    assert again_s == first_s  # the cost of the original fit, not of loading it
    np.testing.assert_array_equal(again.latent(anchors), first.latent(anchors))
    # another parameter, or other train pairs, is another fit
    assert not fit({**params, "hidden": 8}, train)[2]
    other = TrainData(anchors[::-1].copy(), train.positives[::-1].copy())
    assert not fit(params, other)[2]
