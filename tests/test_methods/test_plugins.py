"""Methods from outside the repository: --plugin files, bench.methods entry points, the template."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from methods import get_method, load_grid, method_class, method_names
from methods.registry import METHODS, PluginError, load_entry_points, load_plugin, plugin_methods
from tests.helpers import write_rirs

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "method_template.py"

PLUGIN = '''
from methods.exhaustive import Exhaustive
from methods.registry import register


@register
class {cls}(Exhaustive):
    """A plugin method (exact search under another name)."""

    name = "{name}"
'''
GRID = "build:\n  - {}\nquery:\n  - {}\n"


# tests/conftest.py: each test leaves the method registry as it found it
pytestmark = pytest.mark.usefixtures("restore_registry")


def write_plugin(folder: Path, module: str, name: str, body: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(body if body is not None else PLUGIN.format(cls="Plugin" + module.title().replace("_", ""),
                                                                name=name))
    (folder / f"{name}.yml").write_text(GRID)
    return path


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_plugin_file_registers_like_a_builtin(tmp_path: Path) -> None:
    path = write_plugin(tmp_path / "anywhere", "my_exact", "plugin-exact")
    assert load_plugin(path) == ["plugin-exact"]
    assert "plugin-exact" in method_names()
    assert method_class("plugin-exact").config_path() == tmp_path / "anywhere" / "plugin-exact.yml"
    assert load_grid("plugin-exact") == {"build": [{}], "query": [{}]}
    assert plugin_methods()["plugin-exact"] == f"plugin {path.resolve()}"
    db = np.eye(4, 8, dtype=np.float32)
    method = get_method("plugin-exact")
    method.build(db)
    assert method.search(db[:2], 1).ids[:, 0].tolist() == [0, 1]
    assert load_plugin(path) == ["plugin-exact"]  # loading it again is a no-op


def test_plugin_errors_are_clear_and_register_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"plugin file .*nope\.py not found"):
        load_plugin(tmp_path / "nope.py")
    broken = write_plugin(tmp_path, "broken", "x", body="import no_such_module_for_bench\n")
    with pytest.raises(ValueError, match=rf"plugin {broken}: import failed: ModuleNotFoundError: .*no_such_module"):
        load_plugin(broken)
    empty = write_plugin(tmp_path, "empty", "x", body="VALUE = 1\n")
    with pytest.raises(ValueError, match=rf"plugin {empty} registered no method"):
        load_plugin(empty)
    before = dict(METHODS)
    two = write_plugin(tmp_path, "two", "x", body=PLUGIN.format(cls="Fine", name="fine-one")
                       + PLUGIN.format(cls="Clash", name="lsh"))
    with pytest.raises(ValueError, match=r"import failed: ValueError: method name 'lsh' is already registered by "
                                         r"methods\.lsh\.LSH"):
        load_plugin(two)
    assert METHODS == before  # fine-one, registered before the clash, is rolled back
    not_py = tmp_path / "plugin.txt"
    not_py.write_text("")
    with pytest.raises(ValueError, match="not a Python module file"):
        load_plugin(not_py)


def test_cli_plugin_errors_exit_2_naming_the_file(tmp_path: Path) -> None:
    broken = write_plugin(tmp_path, "broken", "x", body="raise RuntimeError('plugin bug')\n")
    out = run_cli("list", "--plugin", str(broken))
    assert out.returncode == 2 and f"error: plugin {broken}: import failed: RuntimeError: plugin bug" in out.stderr
    out = run_cli("run", "--plugin", str(tmp_path / "missing.py"), "--method", "lsh")
    assert out.returncode == 2 and "not found" in out.stderr


def make_site(root: Path, module: str, entry: str, name: str) -> Path:
    """A folder with a module and an installed-distribution record declaring a bench.methods entry point."""
    write_plugin(root, module, name)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    info.joinpath("entry_points.txt").write_text(f"[bench.methods]\n{name} = {entry}\n")
    return root


def test_entry_point_registers_a_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "site", "fhb_ep_demo", "fhb_ep_demo:PluginFhbEpDemo", "ep-exact")
    monkeypatch.syspath_prepend(str(site))
    assert load_entry_points() == ["ep-exact"]
    assert load_grid("ep-exact") == {"build": [{}], "query": [{}]}
    assert plugin_methods()["ep-exact"] == "entry point ep-exact = fhb_ep_demo:PluginFhbEpDemo"
    assert load_entry_points() == []  # each entry point is loaded once

    out = run_cli("list", "ep-exact", env={"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])})
    assert out.returncode == 0, out.stderr
    assert "ep-exact: A plugin method" in out.stdout and "from: entry point ep-exact" in out.stdout


def test_broken_entry_point_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "site", "fhb_ep_broken", "fhb_ep_no_such_module", "ep-broken")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"entry point 'ep-broken' = 'fhb_ep_no_such_module' \(group "
                                           r"'bench.methods', from fhb-ep-broken\): ModuleNotFoundError"):
        load_entry_points()


def test_spectrogram_methods_cannot_fit() -> None:
    from methods.base import Method, TrainData
    from methods.registry import register

    class Fits(Method):
        name = "spectral-fit"
        input_kind = "spectrogram"

        def _fit(self, train: TrainData) -> None:
            pass

    with pytest.raises(ValueError, match="cannot override _fit"):
        register(Fits)

    class Unknown(Method):
        name = "odd-input"
        input_kind = "waveform"

    with pytest.raises(ValueError, match="input_kind='waveform' is not allowed; choose one of: embedding, spectrogram"):
        register(Unknown)


@pytest.mark.slow
def test_plugin_method_runs_end_to_end_beside_minhash(tmp_path: Path) -> None:
    """The template, copied anywhere, runs through `bench run --plugin` with a spectrogram method."""
    write_rirs(tmp_path / "rirs")
    plugin_dir = tmp_path / "my_plugins"
    plugin_dir.mkdir()
    plugin = plugin_dir / "pca_shortlist.py"
    shutil.copy(TEMPLATE, plugin)
    shutil.copy(TEMPLATE.with_name("my-method.yml"), plugin_dir / "my-method.yml")
    cfg = {"synth_tracks": 16, "rooms": str(tmp_path / "rirs"), "train_pairs": 64,
           "queries": {"durations": [1, 2], "snrs": ["clean", 5], "reverbs": ["none"], "per_cell": 2},
           "timing": {"warmup": 2, "repeats": 1, "latency_queries": 8, "batch_repeats": 1},
           "grids": {"my-method": {"build": [{"dims": 8}], "query": [{"shortlist": 5}, {"shortlist": 40}]},
                     "minhash": {"build": [{"top_t": 100, "num_perm": 30, "bands": 10, "rows": 3}],
                                 "query": [{"probe_bands": 5}, {"probe_bands": 10}]}}}
    (tmp_path / "run.yml").write_text(yaml.safe_dump(cfg))
    out = run_cli("run", "--plugin", str(plugin), "--method", "my-method", "minhash", "--config",
                  str(tmp_path / "run.yml"), "--out", str(tmp_path / "reports"), "--no-progress",
                  env={"FLOWHASH_BENCH_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "reports").iterdir()
    points = pd.read_parquet(run_dir / "points.parquet")
    assert set(points["method"]) == {"exhaustive", "my-method", "minhash"}
    mine = points[points["method"] == "my-method"].sort_values("param_index")
    assert mine["candidates_mean"].tolist()[1] > mine["candidates_mean"].tolist()[0]
    assert (mine["exact"] > 0).all() and mine["latency_mean_ms"].notna().all()
    minhash = points[points["method"] == "minhash"]
    assert minhash["latency_mean_ms"].notna().all() and (minhash["candidates_mean"] > 0).all()
    parts = [json.loads(p.read_text()) for p in (run_dir / "parts").glob("*.json")]
    parts = [p for p in parts if p.get("kind") != "retime"]  # the re-timing part holds no method configuration
    inputs = {p["label"].split("(")[0]: p["input"] for p in parts}
    assert inputs["my-method"]["kind"] == "embedding" and inputs["minhash"]["kind"] == "spectrogram"
    assert inputs["my-method"]["frontend_ms_per_segment"] > 0  # the encoder's, added in e2e latency
    assert inputs["minhash"]["dim"] == 32 * 32 and inputs["minhash"]["frontend_ms_per_segment"] > 0
    assert "my-method" in out.stdout and "minhash" in out.stdout
    report = (run_dir / "report.md").read_text()
    assert "my-method" in report and "minhash" in report


@pytest.mark.slow
def test_template_passes_the_conformance_test() -> None:
    """The documented way to check a plugin file:
    BENCH_PLUGINS=FILE pytest tests/test_methods/test_methods_conformance.py."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "my-method",
                          str(ROOT / "tests" / "test_methods" / "test_methods_conformance.py")],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "BENCH_PLUGINS": str(TEMPLATE)})
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout and " failed" not in out.stdout


def test_snapshot_and_restore_forget_what_was_registered_since(tmp_path: Path) -> None:
    from methods import registry

    state = registry.snapshot()
    names = load_plugin(write_plugin(tmp_path, "fhb_snapshot_demo", "snap-exact"))
    assert names == ["snap-exact"] and "snap-exact" in METHODS
    module = METHODS["snap-exact"].__module__
    registry.restore(state)
    assert "snap-exact" not in METHODS and module not in sys.modules and registry.loaded_plugins() == list(
        state.plugins)
