"""Numbers that cannot silently go wrong: each bad input or fault the harness once turned into a
plausible number, a traceback or a vague message now gives a clear error or is handled.

Every case writes its own files (plugins, audio, configs, baselines) and runs the real components.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from bench.regress.decide import BaselineError, load_baseline
from bench.regress.scenario import load_scenario
from bench.report.data import ReportDataError, load_run
from bench.run.config import RunConfig, config_from_dict, load_config
from bench.run.guard import MethodError, MethodTimeout
from bench.run.inputs import prepare_inputs
from bench.run.result_checks import MethodResultError, check_search_result
from bench.run.runner import evaluate_method, run_benchmark
from bench.run.store import RunStoreError
from datasets.cache import cache_root
from datasets.corpora.folder import FolderCorpus
from datasets.folder_lock import FolderBusyError
from datasets.noise.folder import FolderNoiseBank
from datasets.noise.registry import open_noise_bank
from datasets.overlap import SplitLeakError, check_no_leak
from datasets.protocol import Protocol
from datasets.queries.split_segments import readable_tracks
from datasets.rooms import open_room_bank
from encoders.builtin.checkpoint import load_checkpoint, save_checkpoint
from encoders.embed import NonFiniteFeatures, db_cache_key
from methods.base import SearchResult
from methods.registry import load_plugin, resolve_grid
from tests.conftest import tone_track
from tests.helpers import QUERIES, TIMING, write_rirs

ROOT = Path(__file__).resolve().parents[2]
GRIDS = {"lsh": {"build": [{"K": 8, "L": 1}], "query": [{"radius": 0}, {"radius": 1}]}}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    """A small synth corpus config with folder rooms, and a module-wide cache."""
    root = tmp_path_factory.mktemp("failure-modes")
    write_rirs(root / "rirs")
    config = RunConfig(synth_tracks=16, rooms=str(root / "rirs"), queries=QUERIES, train_pairs=300, timing=TIMING,
                       grids=GRIDS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(root / "cache"))
        yield config, root


def write_plugin(folder: Path, name: str, search_body: str, build_body: str = "") -> Path:
    """A plugin method ``name``: exact search whose result ``search_body`` then edits in place (``res``);
    ``build_body`` runs after its build (``db``)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    path = folder / f"{module}.py"
    path.write_text(f'''
import numpy as np

from methods.exhaustive import Exhaustive
from methods.registry import register


@register
class Plugin{module.title().replace("_", "")}(Exhaustive):
    name = "{name}"

    def _build(self, db):
        super()._build(db)
{build_body or "        pass"}

    def _search(self, q, k):
        res = super()._search(q, k)
{search_body}
        return res
''')
    (folder / f"{name}.yml").write_text("build:\n  - {}\nquery:\n  - {}\n")
    return path


def bench_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, env=env)


# --------------------------------------------------------------------------- search results


def valid_result(nq: int = 4, k: int = 5) -> SearchResult:
    ids = np.tile(np.arange(k, dtype=np.int64), (nq, 1))
    ids[1, 3:] = -1
    scores = np.tile(np.linspace(1.0, 0.5, k, dtype=np.float32), (nq, 1))
    scores[1, 3:] = -np.inf
    return SearchResult(ids, scores, np.full(nq, 20, dtype=np.int64))


def broken(edit) -> SearchResult:
    res = valid_result()
    edit(res)
    return res


BROKEN = {
    "ids must lie in": lambda r: r.ids.__setitem__((2, 0), 100),
    "-1 padding must come after": lambda r: r.ids.__setitem__((0, 1), -1),
    "an id appears twice": lambda r: r.ids.__setitem__((3, 2), 0),
    "scores must be finite": lambda r: r.scores.__setitem__((2, 2), np.nan),
    "descending order": lambda r: r.scores.__setitem__((0, 4), 2.0),
    "at least the number of ids": lambda r: r.candidates.__setitem__(2, 3),
    "at most the DB size": lambda r: r.candidates.__setitem__(0, 10_000),
}


def test_a_valid_result_with_padding_passes_the_checks() -> None:
    check_search_result(valid_result(), "m(K=1)", {"n": 1}, nq=4, k=5, n_db=50)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_rule_is_named_with_the_method_and_an_example_row(rule: str) -> None:
    with pytest.raises(MethodResultError, match=rf"method m\(K=1\) at {{\"n\": 1}} .*{rule}.*row \d+: ids="):
        check_search_result(broken(BROKEN[rule]), "m(K=1)", {"n": 1}, nq=4, k=5, n_db=50)


@pytest.mark.parametrize("edit, message", [
    (lambda r: SearchResult(r.ids[:, :3], r.scores, r.candidates), r"ids has shape \(4, 3\); expected \(4, 5\)"),
    (lambda r: SearchResult(r.ids.astype(np.float32), r.scores, r.candidates), "ids has dtype float32"),
    (lambda r: SearchResult(r.ids, r.scores, r.candidates[:2]), r"candidates has shape \(2,\)"),
    (lambda r: (r.ids, r.scores), "expected a methods.base.SearchResult"),
])
def test_wrong_shapes_types_and_objects_are_named(edit, message: str) -> None:
    with pytest.raises(MethodResultError, match=message):
        check_search_result(edit(valid_result()), "m", {}, nq=4, k=5, n_db=50)


def test_a_plugin_returning_negative_candidates_stops_the_run(small, tmp_path, restore_registry) -> None:
    config, _ = small
    load_plugin(write_plugin(tmp_path / "plugins", "neg-cands", "        res.candidates[:] = -res.candidates"))
    with pytest.raises(MethodResultError, match=r"method neg-cands at {}.*candidates .* at least the number of ids"):
        run_benchmark(config, ["neg-cands"], run_dir=tmp_path / "run", progress=False)


# --------------------------------------------------------------------------- run folders


def test_a_run_folder_refuses_another_config_until_forced(small, capsys) -> None:
    config, root = small
    run_dir = root / "one-config"
    run_benchmark(config, ["lsh"], run_dir=run_dir, progress=False)
    before = (run_dir / "results.parquet").read_bytes()
    other = replace(config, queries=replace(config.queries, per_cell=4))
    with pytest.raises(RunStoreError, match=r"another configuration \(run\.json differs: config\.queries\.per_cell\)"):
        run_benchmark(other, ["lsh"], run_dir=run_dir, progress=False)
    assert (run_dir / "results.parquet").read_bytes() == before  # nothing of the old run was touched
    assert json.loads((run_dir / "run.json").read_text())["config"]["queries"]["per_cell"] == 6
    capsys.readouterr()
    out = run_benchmark(other, ["lsh"], run_dir=run_dir, progress=False, force=True)
    assert "--force: discarding" in capsys.readouterr().out
    assert out.info["config"]["queries"]["per_cell"] == 4 and len(out.info["labels"]) == 2
    assert pd.read_parquet(run_dir / "outcomes.parquet")["query_id"].nunique() == 4 * 8  # 8 cells


def test_redo_a_changed_plugin_and_a_damaged_part_are_run_again(small, tmp_path, capsys, restore_registry) -> None:
    config, _ = small
    run_dir = tmp_path / "resume"
    plugin = write_plugin(tmp_path / "plugins", "my-exact", "        pass")
    load_plugin(plugin)
    run_benchmark(config, ["my-exact"], run_dir=run_dir, progress=False)
    capsys.readouterr()
    run_benchmark(config, ["my-exact"], run_dir=run_dir, progress=False, redo=("my-exact",))
    assert "my-exact: --redo my-exact: running it again" in capsys.readouterr().out

    plugin.write_text(plugin.read_text() + "\n# a new version of the plugin\n")
    run_benchmark(config, ["my-exact"], run_dir=run_dir, progress=False)
    text = capsys.readouterr().out
    assert "my-exact: the method's code changed since its part was finished" in text
    assert "exhaustive: done in an earlier run, skipped" in text

    marker = next(p for p in (run_dir / "parts").glob("*.json") if json.loads(p.read_text())["label"] == "my-exact")
    marker.write_text('{"label": "my-')
    run_benchmark(config, ["my-exact"], run_dir=run_dir, progress=False)
    assert "my-exact: its finished part in" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--redo lsh: not among the methods of this run"):
        run_benchmark(config, ["my-exact"], run_dir=run_dir, progress=False, redo=("lsh",))


def test_out_pointing_at_a_file_is_a_clear_error(small, tmp_path) -> None:
    config, _ = small
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunStoreError, match="--out .*afile is a file"):
        run_benchmark(config, ["lsh"], out=tmp_path / "afile", progress=False)
    with pytest.raises(RunStoreError, match="is a file"):
        run_benchmark(config, ["lsh"], run_dir=tmp_path / "afile" / "run", progress=False)


def test_report_on_a_run_with_no_rows_says_so(small, tmp_path) -> None:
    config, _ = small
    run_dir = tmp_path / "empty"
    run_benchmark(config, ["lsh"], run_dir=run_dir, progress=False)
    for name in ("results.parquet", "points.parquet"):
        pd.read_parquet(run_dir / name).iloc[:0].to_parquet(run_dir / name)
    with pytest.raises(ReportDataError, match="points.parquet: no rows, so there is nothing to report"):
        load_run(run_dir)


# --------------------------------------------------------------------------- non-finite data


def nan_encoder(path: Path) -> Path:
    """The shipped encoder with one weight set to NaN, saved as a checkpoint file."""
    enc = load_checkpoint("synth-default")
    with torch.no_grad():
        next(enc.model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(path, enc.model, enc.protocol, {"trained": False})
    return path


def test_an_encoder_with_nan_weights_is_refused_and_nothing_is_cached(small, tmp_path) -> None:
    config, _ = small
    encoder = nan_encoder(tmp_path / "nan-encoder.pt")
    with pytest.raises(NonFiniteFeatures, match=r"encoder 'nan-encoder' \(.*nan-encoder.pt, sha256 \w+\) produced NaN"):
        run_benchmark(replace(config, encoder=str(encoder)), ["lsh"], run_dir=tmp_path / "nan-run", progress=False)
    assert not (tmp_path / "nan-run").exists()  # a failed run leaves no empty folder behind
    inputs = prepare_inputs(config, progress=False)  # the same DB: its cache key under the NaN encoder
    key = db_cache_key(load_checkpoint(encoder), inputs.corpus, inputs.db_segments)
    assert not (cache_root() / "embeddings" / "db" / f"{key}.npy").exists()


def test_a_truncated_embedding_cache_is_named_and_computed_again(small) -> None:
    config, _ = small
    first = prepare_inputs(config, progress=False)
    cached = cache_root() / "embeddings" / "db" / f"{db_cache_key(first.encoder, first.corpus, first.db_segments)}.npy"
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
    with pytest.warns(UserWarning, match=rf"cache file {cached} cannot be read .* computing it again"):
        again = prepare_inputs(config, progress=False)
    np.testing.assert_array_equal(first.db, again.db)


def nan_folder_corpus(root: Path) -> tuple[Path, str]:
    """A folder corpus of tone tracks whose one val-split file holds NaN samples; returns (folder, its id)."""
    root.mkdir(parents=True)
    i = 0
    while i < 14 or not FolderCorpus(root).tracks("val") or len(FolderCorpus(root).tracks("test")) < 2:
        sf.write(root / f"track{i:02d}.wav", tone_track(i, 20.0, 8000), 8000)
        i += 1
    bad = FolderCorpus(root).tracks("val")[0].track_id
    audio = tone_track(99, 20.0, 8000)
    audio[1000:1100] = np.nan
    sf.write(root / bad, audio, 8000, subtype="FLOAT")
    return root, bad


def test_a_nan_audio_file_is_left_out_the_same_way_by_corpus_queries_and_the_db(small, tmp_path) -> None:
    config, root = small
    folder, bad = nan_folder_corpus(tmp_path / "music")
    out = bench_cli("corpus", "--corpus", "folder", "--corpus-path", str(folder), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "1 unreadable, left out of query sets and the DB" in out.stdout and bad in out.stdout
    assert readable_tracks(FolderCorpus(folder), "val", progress=False)[1][0]["track_id"] == bad
    cfg = replace(config, corpus="folder", corpus_path=str(folder), synth_tracks=None,
                  queries=replace(config.queries, per_cell=2))
    with pytest.warns(UserWarning, match=rf"skipping .*{bad}: audio holds NaN"):
        run = run_benchmark(cfg, ["lsh"], run_dir=tmp_path / "run", progress=False)
    assert bad not in set(pd.read_parquet(tmp_path / "run" / "outcomes.parquet")["query_id"])
    assert run.info["db"]["unreadable_tracks"]["count"] == 1
    assert run.info["db"]["unreadable_tracks"]["items"][0]["track_id"] == bad


# --------------------------------------------------------------------------- baselines and configs


@pytest.mark.parametrize("value", [math.nan, "0.5", None, True])
def test_a_nan_or_non_numeric_baseline_value_is_rejected(tmp_path, value) -> None:
    data = json.loads((ROOT / "reports" / "baselines" / "ci.json").read_text())
    name = "candidate_speedup flowhash over lsh"
    data["metrics"][name]["value"] = value
    path = tmp_path / "ci.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=rf"metrics\['{name}'\]\.value is .* must be a finite number"):
        load_baseline(path, load_scenario())


def test_a_misspelt_grid_method_is_an_error_listing_the_methods() -> None:
    with pytest.raises(ValueError, match=r"my\.yml: grids: unknown method\(s\) \['lhs'\]; known: .*lsh"):
        config_from_dict({"grids": {"lhs": {"build": [{"K": 8}]}}}, "my.yml")


@pytest.mark.parametrize("given, other", [("build", "query"), ("query", "build")])
def test_a_partial_grid_override_takes_the_other_list_from_the_default(given: str, other: str) -> None:
    override = {"build": [{"K": 8, "L": 2}], "query": [{"radius": 1}]}[given]
    config = config_from_dict({"grids": {"lsh": {given: override}}}, "my.yml")
    grid = resolve_grid("lsh", config.grids["lsh"])
    assert grid[given] == override and grid[other] == resolve_grid("lsh")[other]


@pytest.mark.parametrize("text, message", [
    ("queries: {per_cell: ten}", r"queries\.per_cell: expected an integer, got 'ten'"),
    ("queries: {durations: 2}", r"queries\.durations: expected a non-empty list such as \[1, 2\], got 2"),
    ("db_splits: test", r"db_splits: expected a non-empty list such as \[test, val\], got 'test'"),
    ("timing: {threads: 1.5}", r"timing\.threads: expected an integer, got 1\.5"),
    ("synth_tracks: 0", r"synth_tracks \(--synth-tracks\) = 0: allowed integers 1\.\.10000"),
    ("grids: {lsh: {query: [{radus: 1}]}}", r"grids\.lsh: query\[0\] has unknown parameter\(s\) \['radus'\]"),
])
def test_config_type_errors_name_the_field_and_the_expected_type(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text + "\n")
    out = bench_cli("run", "--config", str(path), "--method", "lsh", "--no-progress", "--out", str(tmp_path / "r"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert __import__("re").search(message, out.stderr), out.stderr


# --------------------------------------------------------------------------- noise banks


def test_changing_the_noise_bank_builds_another_query_set(small, tmp_path) -> None:
    config, root = small
    noise = tmp_path / "noise" / "hum"
    noise.mkdir(parents=True)
    for i in range(3):
        sf.write(noise / f"n{i}.wav", np.random.default_rng(i).standard_normal(8000 * 4).astype(np.float32) * 0.1, 8000)
    a = prepare_inputs(config, progress=False)
    b = prepare_inputs(replace(config, noise=str(tmp_path / "noise")), progress=False)
    assert a.queryset.root != b.queryset.root and a.queryset.content_hash != b.queryset.content_hash


def test_a_leak_between_noise_recordings_is_refused_before_any_embedding_naming_the_files(small, tmp_path) -> None:
    config, _ = small
    take = np.random.default_rng(5).standard_normal(8000 * 6).astype(np.float32) * 0.1
    for bank, kind in (("bank_a", "rain"), ("bank_b", "storm")):
        (tmp_path / bank / kind).mkdir(parents=True)
        for i in range(4):
            other = np.random.default_rng(100 + i + 10 * (bank == "bank_b")).standard_normal(8000 * 6) * 0.1
            sf.write(tmp_path / bank / kind / f"{kind}{i}.wav", other.astype(np.float32), 8000)
    sf.write(tmp_path / "bank_a" / "rain" / "take.wav", take, 8000)
    take_split = FolderNoiseBank(tmp_path / "bank_a").clip("rain/take").split
    for i in range(40):  # the same take under another name in the other bank, landing in the other split
        copy = tmp_path / "bank_b" / "storm" / f"copy{i}.wav"
        sf.write(copy, 0.7 * take, 8000)
        if (FolderNoiseBank(tmp_path / "bank_b").clip(f"storm/copy{i}").split == "train") != (take_split == "train"):
            break
        copy.unlink()
    else:
        pytest.fail("no name put the copy in the other split")
    spec = f"{tmp_path / 'bank_a'}+{tmp_path / 'bank_b'}"
    with pytest.raises(SplitLeakError, match=rf"noise: .*'rain/take' \(.*take\.wav\) and .*'storm/copy{i}' "
                                             rf"\(.*copy{i}\.wav\) share"):
        check_no_leak(_tiny_corpus(tmp_path), open_noise_bank(spec, Protocol()),
                      open_room_bank(config.rooms, Protocol()))
    embeddings = cache_root() / "embeddings"
    before = set(embeddings.rglob("*")) if embeddings.exists() else set()
    with pytest.raises(SplitLeakError):
        run_benchmark(replace(config, noise=spec, synth_tracks=15), ["lsh"], run_dir=tmp_path / "leak", progress=False)
    assert (set(embeddings.rglob("*")) if embeddings.exists() else set()) == before


def _tiny_corpus(tmp_path: Path) -> FolderCorpus:
    folder = tmp_path / "tiny"
    folder.mkdir(exist_ok=True)
    for i in range(4):
        sf.write(folder / f"t{i}.wav", tone_track(200 + i, 3.0, 8000), 8000)
    return FolderCorpus(folder)


# --------------------------------------------------------------------------- methods under guard


@pytest.fixture(scope="module")
def small_inputs(small):
    """The small config's prepared inputs (query set, DB and query embeddings), made once."""
    config, _ = small
    return prepare_inputs(config, progress=False)


@pytest.mark.parametrize("name, build_body, search_body, message", [
    ("db-zeroer", "        db[:] = 0", "        pass",
     r"method db-zeroer, stage build: ValueError: assignment destination is read-only; the harness's arrays are "
     r"read-only"),
    ("q-zeroer", "", "        q[:] = 0",
     r"method q-zeroer, stage search, query parameters \{\}, all \d+ query segments in one call: ValueError: "
     r"assignment destination is read-only"),
    ("boom", "", "        raise KeyError('boom')",
     r"method boom, stage search, query parameters \{\}, all \d+ query segments in one call: KeyError: 'boom'"),
])
def test_a_method_that_writes_the_harness_arrays_or_raises_is_named_and_harms_no_other(
        small_inputs, tmp_path, restore_registry, name, build_body, search_body, message) -> None:
    load_plugin(write_plugin(tmp_path / "plugins", name, search_body, build_body))
    with pytest.raises(MethodError, match=message):
        evaluate_method(name, {}, small_inputs, [{}], progress=False)
    _, points, _, _ = evaluate_method("exhaustive", {}, small_inputs, [{}], progress=False)  # a method after it
    assert points["exact"].iloc[0] > 0.3


def test_a_search_that_never_returns_stops_at_the_call_limit(small_inputs, tmp_path, restore_registry) -> None:
    load_plugin(write_plugin(tmp_path / "plugins", "sleeper", "        import time; time.sleep(3600)"))
    limited = replace(small_inputs, config=replace(small_inputs.config, call_limit_s=2.0))
    with pytest.raises(MethodTimeout, match=r"method sleeper, stage search, .*: no return after the 2 s limit "
                                            r"\(call_limit_s in the run config\)"):
        evaluate_method("sleeper", {}, limited, [{}], progress=False)


def test_parts_carry_their_identity_and_checksums_and_the_folder_one_writer(small, tmp_path, capsys) -> None:
    config, _ = small
    run_dir = tmp_path / "run"
    run_benchmark(config, ["lsh"], run_dir=run_dir, progress=False)
    exact = pd.read_parquet(run_dir / "points.parquet").set_index("label")["exact"]
    # a part's table edited on disk (still valid Parquet)
    marker = next(p for p in (run_dir / "parts").glob("*.json")
                  if json.loads(p.read_text())["label"] == "lsh(K=8,L=1)")
    table = marker.with_name(marker.stem + ".points.parquet")
    pd.read_parquet(table).assign(exact=0.0).to_parquet(table)
    # a second writer is refused naming the holder
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom datasets.folder_lock import folder_lock\n"
                               f"with folder_lock({str(run_dir)!r}, 'run folder'):\n"
                               "    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"this run folder is in use by another process \(PID {holder.pid} "):
            run_benchmark(config, ["lsh"], run_dir=run_dir, progress=False)
        report = bench_cli("report", str(run_dir))  # writing the report into the folder waits its turn too
        assert report.returncode == 2 and f"in use by another process (PID {holder.pid} " in report.stderr
    finally:
        holder.kill()
        holder.wait()
    # the killed holder's lock is taken over, and the edited part is run again, not reused
    capsys.readouterr()
    run_benchmark(config, ["lsh"], run_dir=run_dir, progress=False)
    out, err = capsys.readouterr()
    assert f"taking over the lock of PID {holder.pid}" in err
    assert "points.parquet does not match the sha256 recorded when it was saved); running it again" in out
    assert pd.read_parquet(run_dir / "points.parquet").set_index("label")["exact"].equals(exact)
    # run.json gone: the parts still refuse another configuration
    (run_dir / "run.json").unlink()
    other = replace(config, queries=replace(config.queries, per_cell=4))
    with pytest.raises(RunStoreError, match=r"another configuration \(parts/\w+\.json \(.*\) differs: "
                                            r"config\.queries\.per_cell\)"):
        run_benchmark(other, ["lsh"], run_dir=run_dir, progress=False)


def test_a_duplicate_yaml_key_is_refused_naming_it_and_its_lines(tmp_path) -> None:
    path = tmp_path / "dup.yml"
    path.write_text("seed: 1\nqueries:\n  per_cell: 4\n  per_cell: 8\n")
    with pytest.raises(ValueError, match=rf"{path}: key 'per_cell' appears twice in one mapping \(lines 3 and 4\)"):
        load_config(path)
    path.write_text("queries: {per_cell: 4, per_cell: 8}\n")  # a flow mapping: both on one line
    with pytest.raises(ValueError, match=rf"{path}: key 'per_cell' appears twice in one mapping \(line 1\)"):
        load_config(path)


def test_a_bad_seed_or_device_is_refused_before_any_data_is_built(small, tmp_path) -> None:
    config, _ = small
    with pytest.raises(ValueError, match=r"my\.yml: seed=-5: allowed integers >= 0"):
        config_from_dict({"seed": -5}, "my.yml")
    with pytest.raises(MethodError, match=r"method exhaustive, stage construct: ValueError: exhaustive: "
                                          r"device='tpu' is not supported"):
        run_benchmark(replace(config, device="tpu"), ["lsh"], run_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_an_unreachable_ray_cluster_is_an_error_not_a_hang() -> None:
    pytest.importorskip("ray")
    code = "from bench.distributed.cluster import connect\nconnect('127.0.0.1:1')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "RayUnavailable: cannot reach the Ray cluster at 127.0.0.1:1: nothing answered" in out.stderr


@pytest.mark.parametrize("error, user", [(ValueError("bad value"), True), (FileNotFoundError("no file"), True),
                                         (FolderBusyError("busy"), True), (KeyError("bug"), False),
                                         (RuntimeError("bug"), False)])
def test_the_cli_reports_user_errors_in_one_line_and_lets_bugs_through(monkeypatch, capsys, error, user) -> None:
    from bench.cli import main as cli

    def fail(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "list", (*cli.COMMANDS["list"][:2], fail))
    if user:
        assert cli.main(["list"]) == 2
        assert capsys.readouterr().err.strip() == f"error: {error}"
    else:
        with pytest.raises(type(error)):
            cli.main(["list"])
