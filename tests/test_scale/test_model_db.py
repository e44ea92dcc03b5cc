"""A scaling DB filled by the fingerprint model, end to end on the tiny synthetic case: the model is
fitted on distractor rows only, its rows follow the run's own DB, ``bench scale --validate-model``
compares every method between the two DBs, and a method the validation does not find matching is
not run on model rows."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.cli.main import main
from bench.run.inputs import prepare_inputs
from bench.scale.config import Distractors, scale_config_from_dict
from bench.scale.database import MODEL_SOURCE, ScaleDatabase, build_scale_db, fitted_model
from bench.scale.model_validation import (
    LATENCY_PARQUET,
    MODEL_KEY,
    NOT_COUNTED,
    REAL_DIR,
    SYNTHETIC_DIR,
    VALIDATION_CSV,
    read_validation,
    sides,
    validated_model,
    validation_table,
)
from bench.scale.sweep import STATUS_NOT_VALIDATED, run_scale
from datasets.distractors import FILL_SOURCE
from tests.helpers import TINY

SIZES = ["base", 2500, 4000]


def _raw(**distractors) -> dict:
    raw = copy.deepcopy(TINY)
    raw.update({"sizes": SIZES, "distractors": {"real": False, "fill": True, **distractors}})
    return raw


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def shared_cache(module_cache, monkeypatch):
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(module_cache))


@pytest.fixture(scope="module")
def validation(tmp_path_factory, module_cache):
    """``bench scale --validate-model`` on the tiny config (its fill is the synth generator's audio)."""
    root = tmp_path_factory.mktemp("validation")
    config = root / "scale.yml"
    import yaml

    config.write_text(yaml.safe_dump(_raw(model=True)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(module_cache))
        assert main(["scale", "--config", str(config), "--run-dir", str(root / "run"), "--validate-model",
                     "--no-progress"]) == 0
    return root / "run"


@pytest.mark.slow
def test_model_rows_follow_the_runs_own_db_and_the_model_saw_only_distractors(validation, shared_cache):
    info = json.loads((validation / "synthetic" / "run.json").read_text())
    real = json.loads((validation / "real" / "run.json").read_text())
    model = info["fingerprint_model"]
    base = info["db"]["base_segments"]
    for facts in info["db"]["sizes"]:
        assert facts["corpus_segments"] == min(facts["n_db"], base)
        assert facts["synthetic_distractor_segments"] == facts["n_db"] - base
    assert model["source"] == MODEL_SOURCE and model["model_rows"] == max(info["sizes"]) - base
    # fitted on the distractor rows of the real side's DB, every one of them, nothing else
    assert model["fitted_on_store"] == real["store"]["key"]
    assert model["rows"] == max(real["sizes"]) - base
    assert set(model["stats"]) >= {"lag_1", "random_pair", "neighbour_1"}
    store = np.load(info["store"]["root"] + "/rows.npy", mmap_mode="r")
    real_rows = np.load(real["store"]["root"] + "/rows.npy", mmap_mode="r")
    assert np.array_equal(store[:base], real_rows[:base])  # the run's own DB, as embedded
    assert not np.array_equal(store[base:base + 50], real_rows[base:base + 50])
    index = pd.read_parquet(info["store"]["root"] + "/index.parquet")
    assert set(index["source"].iloc[base:]) == {MODEL_SOURCE}


@pytest.mark.slow
def test_no_query_tracks_row_changes_the_model(shared_cache, tmp_path, monkeypatch):
    config = scale_config_from_dict(_raw(), "tiny")
    inputs = prepare_inputs(config.run, progress=False)
    real = build_scale_db(replace(config, sizes=(4000,)), inputs, progress=False)
    model, _ = fitted_model(real, seed=0, progress=False)
    rows = np.array(real.store.rows)
    rows[:real.n_base] = np.random.default_rng(0).standard_normal((real.n_base, rows.shape[1]))  # the query tracks
    changed = ScaleDatabase(real.table, replace(real.store, rows=rows), real.distractors, real.n_base)
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path))  # fit again, not from the cache
    again, _ = fitted_model(changed, seed=0, progress=False)
    assert np.array_equal(model.sample(3000, 5)[0], again.sample(3000, 5)[0])
    assert set(real.table["source"].iloc[real.n_base:]) == {FILL_SOURCE}


def test_candidates_a_library_does_not_count_are_left_out_of_the_verdict():
    rng = np.random.default_rng(0)
    n = 400
    outcomes = pd.DataFrame({"label": "hnswlib(M=16)", "method": "hnswlib", "query_params": "{}", "n_db": 1000,
                             "query_id": np.arange(n), "duration_s": np.repeat([1.0, 3.0], n // 2),
                             "snr": "clean", "reverb": "none", "exact": rng.random(n) < 0.6,
                             "candidates": np.nan, "latency_ms": rng.uniform(1, 2, n)})
    reference = outcomes.assign(label="exhaustive", method="exhaustive", candidates=1000.0)
    real = pd.concat([outcomes, reference], ignore_index=True)
    table = validation_table(real, real.copy()).set_index("method")
    assert table.loc["hnswlib", "candidates_decision"] == NOT_COUNTED
    assert table.loc["exhaustive", "candidates_decision"].startswith("equivalent")
    assert table["matches"].all()  # the same outcomes on both sides: a match on what is counted
    fewer = real.assign(exact=np.where(real["method"] == "hnswlib", False, real["exact"]))
    assert not validation_table(real, fewer).set_index("method").loc["hnswlib", "matches"]


@pytest.mark.slow
def test_the_validation_compares_every_method_at_every_size(validation):
    table = read_validation(validation)
    real = pd.read_parquet(validation / "real" / "points.parquet")
    measured = real[real["n_db"] > real["n_db"].min()]
    assert sorted(set(zip(table["label"], table["query_params"], table["n_db"]))) == \
        sorted(set(zip(measured["label"], measured["query_params"], measured["n_db"])))
    allowed = {"higher", "lower", "undetermined"}
    assert set(table["exact_decision"]) <= allowed | {"equivalent within 1 point"}
    assert set(table["candidates_decision"]) <= allowed | {"equivalent within 10%"}
    control = table[table["method"] == "exhaustive"].set_index("n_db")["latency_decision"]
    for n, decision in control.items():  # exhaustive search is the latency's control at each size
        others = table.loc[(table["n_db"] == n) & (table["method"] != "exhaustive"), "latency_decision"]
        if decision.startswith("equivalent"):
            assert set(others) <= allowed | {"equivalent within 15%"}
        else:
            assert others.str.startswith("control not equivalent (exhaustive ").all()
    assert set(control) <= allowed | {"equivalent within 15%"}
    assert (table["matches"] == (table["exact_decision"].str.startswith("equivalent")
                                 & (table["candidates_decision"].str.startswith("equivalent")
                                    | (table["candidates_decision"] == NOT_COUNTED))
                                 & table["latency_decision"].str.startswith("equivalent"))).all()
    assert (validation / "validation.md").is_file()
    assert "does the fingerprint model stand in" in (validation / "validation.md").read_text()
    # the latency of every compared point was timed interleaved on both DBs, over the same queries
    assert set(table["latency_source"]) == {"interleaved"}
    timed = pd.read_parquet(validation / LATENCY_PARQUET)
    assert timed[["latency_real_ms", "latency_synthetic_ms"]].gt(0).all().all()
    for key, group in timed.groupby(["label", "query_params", "n_db"]):
        row = table[(table["label"] == key[0]) & (table["query_params"] == key[1]) & (table["n_db"] == key[2])]
        assert len(row) == 1 and int(row["timed_queries"].iat[0]) == group["query_id"].nunique() == len(group)


@pytest.mark.slow
def test_a_method_not_validated_is_not_run_on_model_rows(validation, shared_cache, tmp_path):
    table = read_validation(validation).copy()
    table["matches"] = table["method"] != "lsh-directed"
    table.to_csv(tmp_path / VALIDATION_CSV, index=False)
    raw = _raw(model=True)
    raw.update({"model_validation": str(tmp_path), "methods": ["lsh-directed"]})
    out = run_scale(scale_config_from_dict(raw, "gated"), tmp_path / "run", progress=False)
    skipped = out.points[out.points["status"] == STATUS_NOT_VALIDATED]
    assert set(skipped["method"]) == {"lsh-directed"}
    assert set(skipped["n_db"]) == {2500, 4000}  # the base size holds no model rows
    ok = out.points[out.points["status"] == "ok"]
    assert set(ok.loc[ok["n_db"] > ok["n_db"].min(), "method"]) == {"exhaustive"}
    # a validation that now finds it matching: the same run folder runs it where it was left out
    table["matches"] = True
    table.to_csv(tmp_path / VALIDATION_CSV, index=False)
    again = run_scale(scale_config_from_dict(raw, "gated"), tmp_path / "run", progress=False)
    assert (again.points["status"] == "ok").all()
    assert set(again.points.loc[again.points["method"] == "lsh-directed", "n_db"]) >= {2500, 4000}
    # a validation of another fingerprint model gates nothing: a clear error naming both models
    assert set(table[MODEL_KEY]) == {validated_model(validation)}
    table[MODEL_KEY] = "another-model"
    table.to_csv(tmp_path / VALIDATION_CSV, index=False)
    with pytest.raises(ValueError, match=f"validated fingerprint model another-model, but this run's model rows "
                                         f"come from model {validated_model(validation)}"):
        run_scale(scale_config_from_dict(raw, "gated"), tmp_path / "run", progress=False)
    # the same folder gated by a validation elsewhere: its parts stand, nothing is measured again
    moved = tmp_path / "moved"
    moved.mkdir()
    table.assign(**{MODEL_KEY: validated_model(validation), "matches": True}).to_csv(moved / VALIDATION_CSV,
                                                                                    index=False)
    raw["model_validation"] = str(moved)
    parts = sorted((tmp_path / "run" / "parts").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    elsewhere = run_scale(scale_config_from_dict(raw, "gated"), tmp_path / "run", progress=False)
    assert (elsewhere.points["status"] == "ok").all()
    assert [p.stat().st_mtime_ns for p in parts] == stamps


@pytest.mark.parametrize("distractors, message", [
    ({"real_until": 3000}, "applies with distractors.model: true only"),
    ({"model": True, "real_until": 0}, "positive segment count"),
])
def test_bad_model_settings_are_clear_errors(distractors, message):
    with pytest.raises(ValueError, match=message):
        scale_config_from_dict(_raw(**distractors), "tiny")


def test_a_model_db_needs_counted_sizes():
    config = scale_config_from_dict(_raw(model=True), "tiny")
    with pytest.raises(ValueError, match="needs segment counts"):
        build_scale_db(replace(config, sizes=("base", "max")), None, progress=False)  # type: ignore[arg-type]
    assert Distractors(model=True).to_dict() == {"real": True, "fill": True, "model": True, "real_until": None}
    assert Distractors().to_dict() == {"real": True, "fill": True}


def test_a_held_out_validation_keeps_the_real_head_on_the_model_side():
    config = scale_config_from_dict(_raw(model=True, real_until=3000), "tiny")
    both = sides(config)
    assert both[REAL_DIR].distractors == Distractors(real=False, fill=True)
    assert both[SYNTHETIC_DIR].distractors == Distractors(real=False, fill=True, model=True, real_until=3000)
    assert sides(scale_config_from_dict(_raw(model=True), "tiny"))[SYNTHETIC_DIR].distractors.real_until is None


@pytest.mark.slow
def test_a_validation_there_only_when_the_tables_are_combined_still_applies(validation, shared_cache, tmp_path,
                                                                           capsys):
    """A run started before its validation existed runs every method on model rows (with a warning);
    combining its tables then leaves out the methods the validation does not find matching."""
    from bench.run.inputs import prepare_inputs
    from bench.run.store import OUTCOMES, POINTS, RunStore
    from bench.scale.sweep import _apply_validation

    later = tmp_path / "later"
    raw = _raw(model=True)
    raw.update({"model_validation": str(later), "methods": ["lsh-directed"]})
    config = scale_config_from_dict(raw, "later")
    with pytest.warns(UserWarning, match="every method runs on model rows"):
        out = run_scale(config, tmp_path / "run", progress=False)
    assert (out.points["status"] == "ok").all()
    table = read_validation(validation).copy()
    table["matches"] = table["method"] != "lsh-directed"
    later.mkdir()
    table.to_csv(later / VALIDATION_CSV, index=False)
    db = build_scale_db(config, prepare_inputs(config.run, progress=False), progress=False)
    _apply_validation(RunStore(tmp_path / "run"), config, db, out.points, out.results)
    points = pd.read_parquet(tmp_path / "run" / POINTS)
    gone = points[points["status"] == STATUS_NOT_VALIDATED]
    assert set(gone["method"]) == {"lsh-directed"} and set(gone["n_db"]) == {2500, 4000}
    outcomes = pd.read_parquet(tmp_path / "run" / OUTCOMES)
    lsh = outcomes[outcomes["label"].str.startswith("lsh-directed")]
    assert set(lsh["n_db"]) == {points["n_db"].min()}  # only the size without model rows stays
    label = gone["label"].iat[0]
    meta, _ = RunStore(tmp_path / "run").part_meta(f"N=4000 {label}")
    assert meta is not None and meta["status"] == "ok"  # the measured part is kept
    # run again: a method left out where the DB holds model rows is not re-timed there either
    capsys.readouterr()
    run_scale(config, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert "N=4000: re-timing" not in out and "N=4000 retimed" not in out
    assert f"N={points['n_db'].min()} retimed: done in an earlier run, skipped" in out


@pytest.mark.slow
def test_interleaved_latencies_of_other_stores_are_timed_again(validation, shared_cache, tmp_path):
    """A latency file timed over another model's rows (a refitted model's store) is not reused."""
    import shutil

    from bench.scale.model_latency import side_stores, time_sides

    root = tmp_path / "run"
    shutil.copytree(validation, root)
    stores = side_stores(root)
    timed = pd.read_parquet(root / LATENCY_PARQUET)
    assert set(timed["store_real"]) == {stores[REAL_DIR]} and set(timed["store_synthetic"]) == {stores[SYNTHETIC_DIR]}
    config = scale_config_from_dict(_raw(model=True), "tiny")
    assert time_sides(sides(config), root, progress=False).equals(timed)  # nothing to do: the same stores
    stale = timed.assign(store_synthetic="another-model", latency_synthetic_ms=-1.0)
    stale.to_parquet(root / LATENCY_PARQUET)
    again = time_sides(sides(config), root, progress=False)
    assert len(again) == len(timed) and set(again["store_synthetic"]) == {stores[SYNTHETIC_DIR]}
    assert (again["latency_synthetic_ms"] > 0).all()
    assert (pd.read_parquet(root / LATENCY_PARQUET)["latency_synthetic_ms"] > 0).all()
