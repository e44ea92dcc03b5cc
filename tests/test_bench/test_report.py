"""Reports: written after `bench run`, rebuilt by `bench report` deterministically, rendered by a real browser,
several runs compared, and bad run folders refused with errors that name the file and the problem."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.main import main
from bench.report.data import ReportDataError, load_run
from bench.report.run_report import write_run_report
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from bench.run.store import RESULTS_FORMAT, RUN_JSON, RunStore
from tests.helpers import QUERIES, TIMING, write_rirs

GRIDS = {"flowhash": {"build": [{"K": 8, "max_steps": 50}], "query": [{"n_probes": 1}, {"n_probes": 8}]},
         "lsh": {"build": [{"K": 8, "L": 1}], "query": [{"radius": 0}, {"radius": 1}]}}
FIGURE_NAMES = {"hit_rate_vs_snr", "hit_rate_vs_duration", "pareto_latency", "pareto_latency_configs",
                "pareto_e2e_latency", "pareto_candidates", "recall10_qps", "bucket_occupancy", "speedup", "build_cost",
                "ablation", "stages", "training_curves", "latent_abs_z"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
# Injected into a copy of the page: counts images that did not decode and collects errors, then marks the body.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__errors.push(e.message || ('failed to load ' + (t.src || t.href || t.tagName)));
}, true);
(function () { var orig = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' ')); return orig.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images), b = document.body;
  b.setAttribute('data-images', String(imgs.length));
  b.setAttribute('data-broken',
                 String(imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length));
  b.setAttribute('data-errors', JSON.stringify(window.__errors));
  b.setAttribute('data-probe', 'done');
});
</script>"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run of flowhash and lsh (plus the exhaustive reference), with its report."""
    root = tmp_path_factory.mktemp("report-run")
    write_rirs(root / "rirs")
    config = RunConfig(synth_tracks=16, rooms=str(root / "rirs"), queries=QUERIES, train_pairs=300, timing=TIMING,
                       grids=GRIDS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(root / "cache"))
        outcome = run_benchmark(config, ["flowhash", "lsh"], run_dir=root / "run", progress=False)
    assert write_run_report(outcome.root) == root / "run" / "report.html"
    return root / "run"


def bench_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` from any folder."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, env=env)


def without_timestamp(text: str) -> str:
    """The text less its 'Generated at' line."""
    return "\n".join(line for line in text.splitlines() if "Generated at " not in line)


def chromium() -> str | None:
    """Path of Debian's chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def probe_page(browser: str, page: Path, tmp: Path) -> dict[str, str]:
    """Open a copy of ``page`` (same folder, so relative links resolve) with PROBE injected; its body's data-*."""
    probed = page.with_name(f"_probe_{page.name}")
    probed.write_text(page.read_text().replace("<head>", "<head>\n" + PROBE, 1))
    try:
        out = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile-dom'}", "--dump-dom",
                              probed.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probed.unlink()
    body = re.search(r"<body([^>]*)>", out.stdout)
    assert body, f"no DOM from chromium: {out.stderr[-2000:]}"
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1)))


def screenshot(browser: str, page: Path, tmp: Path, name: str) -> Path:
    """Screenshot ``page`` into ``tmp`` and, when REPORT_SCREENSHOT_DIR is set, copy it there."""
    shot = tmp / name
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile-shot'}", "--window-size=1280,4000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000, "chromium wrote no screenshot"
    if os.environ.get("REPORT_SCREENSHOT_DIR"):
        target = Path(os.environ["REPORT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / name)
    return shot


def test_run_writes_report_with_figures_tables_and_environment(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    for name in FIGURE_NAMES:
        for ext in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{ext}").stat().st_size > 1000, (name, ext)
        assert f"figures/{name}.png" in md and f"figures/{name}.svg" in md
    info = json.loads((run_dir / "run.json").read_text())
    for needle in ("Operating points under a latency budget", "mean latency ≤", "2× the exhaustive reference",
                   "flowhash exact / near %", "95% CI ± (widest)", "Speedup of flowhash", "entropy H/K",
                   "expected size sum(c²)/N",
                   "Ablation: what the flow adds", "× fewer than first", "expected/random",
                   "Training and latent diagnostics", "uncertain bits per DB row at tau", "rows over the cap",
                   "Latency breakdown by stage", "rerank ms", "stages % of call", "Harness overhead", "JIT s",
                   info["environment"]["git"]["commit"] or "unknown", info["queryset"]["content_hash"],
                   info["encoder"]["sha256"], "threads", "seeds", "faiss-cpu", "**exact**"):
        assert needle in md, needle
    training = json.loads((run_dir / "training.json").read_text())
    assert set(training) == {"flowhash(K=8,max_steps=50)"}  # lsh learns nothing
    rec = training["flowhash(K=8,max_steps=50)"]
    assert len(rec["training_curve"]) == rec["training"]["epochs"] and rec["latent"]["K"] == 8
    buckets = pd.read_parquet(run_dir / "buckets.parquet")
    flow = buckets[buckets["label"].str.startswith("flowhash")]
    assert set(buckets["label"]) == {"flowhash(K=8,max_steps=50)", "lsh(K=8,L=1)"}
    assert flow["n_buckets"].sum() == 2 ** 8 and (flow["size"] * flow["n_buckets"]).sum() == info["db"]["segments"]
    page = (run_dir / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURE_NAMES)
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)  # self-contained


def test_report_html_loads_every_figure_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not found on PATH (.ci/run installs Debian's chromium package)")
    # the probe itself must see a broken image and a script error, or a clean result means nothing
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head></head><body><img src="missing.png"><script>nosuch()</script></body></html>')
    control = probe_page(browser, bad, tmp_path)
    assert control["probe"] == "done" and control["broken"] == "1" and "nosuch" in control["errors"], control

    state = probe_page(browser, run_dir / "report.html", tmp_path)
    assert state["probe"] == "done", state
    assert state["images"] == str(len(FIGURE_NAMES)) and state["broken"] == "0", state
    assert json.loads(state["errors"].replace("&quot;", '"')) == [], state
    screenshot(browser, run_dir / "report.html", tmp_path, "report.png")


def test_report_is_rebuilt_deterministically_from_stored_results(run_dir: Path, tmp_path: Path) -> None:
    before = (run_dir / "results.parquet").read_bytes()
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        done = bench_cli("report", str(run_dir), "--out", str(out))
        assert done.returncode == 0, done.stderr[-3000:]
        assert str(out / "report.html") in done.stdout
    assert (run_dir / "results.parquet").read_bytes() == before  # nothing recomputed or rewritten
    one, two = outs
    for name in ("report.md", "report.html"):
        a, b = (one / name).read_text(), (two / name).read_text()
        assert a != b or "Generated at " in a
        assert without_timestamp(a) == without_timestamp(b), name
    files = sorted(p.name for p in (one / "figures").iterdir())
    assert files == sorted(p.name for p in (two / "figures").iterdir()) and len(files) == 2 * len(FIGURE_NAMES)
    for name in files:
        assert (one / "figures" / name).read_bytes() == (two / "figures" / name).read_bytes(), name
    # the runner's own report matches too: same figures, same text
    assert without_timestamp((run_dir / "report.md").read_text()) == without_timestamp((one / "report.md").read_text())


def altered_copy(run_dir: Path, dest: Path) -> Path:
    """A second 'run': another commit, flowhash 10 points better at every point."""
    shutil.copytree(run_dir, dest)
    info = json.loads((dest / "run.json").read_text())
    info["environment"]["git"]["commit"] = "f" * 40
    (dest / "run.json").write_text(json.dumps(info))
    for name in ("results.parquet", "points.parquet"):
        frame = pd.read_parquet(dest / name)
        flow = frame["method"] == "flowhash"
        frame.loc[flow, "exact"] = (frame.loc[flow, "exact"] + 0.1).clip(upper=1.0)
        frame.to_parquet(dest / name, index=False)
    return dest


def test_comparison_report_highlights_differences(run_dir: Path, tmp_path: Path) -> None:
    other = altered_copy(run_dir, tmp_path / "other")
    done = bench_cli("report", str(run_dir), str(other), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = (tmp_path / "reports").glob("compare-*")
    md = (out / "report.md").read_text()
    assert "run A" in md and "run B" in md and "**" + "f" * 12 in md  # the differing commit, highlighted
    assert re.search(r"\| flowhash \| B \|.*\| \*\*\+\d+\.\d\*\* \|", md), md  # hit-rate delta >= 1 point in bold
    assert (out / "figures" / "pareto_overlay.png").is_file() and (out / "figures" / "pareto_overlay.svg").is_file()
    page = (out / "report.html").read_text()
    assert '<td class="better">+10.0' in page and '<td class="text differs">ffffffffffff' in page
    browser = chromium()
    if browser is not None:
        state = probe_page(browser, out / "report.html", tmp_path)
        assert state["images"] == "1" and state["broken"] == "0", state
        screenshot(browser, out / "report.html", tmp_path, "comparison.png")


def test_missing_column_and_old_format_give_clear_errors(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "no-column"
    shutil.copytree(run_dir, broken)
    pd.read_parquet(broken / "points.parquet").drop(columns=["latency_mean_ms"]).to_parquet(
        broken / "points.parquet", index=False)
    with pytest.raises(ReportDataError, match=r"points\.parquet: missing column\(s\) \['latency_mean_ms'\]"):
        load_run(broken)
    done = bench_cli("report", str(broken), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "points.parquet: missing column(s) ['latency_mean_ms']" in done.stderr

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    info = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**info, "results_format": RESULTS_FORMAT - 1}))
    with pytest.raises(ReportDataError, match=rf"run\.json: results_format {RESULTS_FORMAT - 1} is not the current "
                                              rf"results format {RESULTS_FORMAT}"):
        load_run(old)
    del info["results_format"]
    (old / "run.json").write_text(json.dumps(info))
    done = bench_cli("report", str(old))
    assert done.returncode == 2 and f"{old / 'run.json'}: no results_format" in done.stderr


def test_pooled_condition_rates_carry_wilson_intervals() -> None:
    from bench.measure.uncertainty import wilson_interval
    from bench.report.tables import condition_rates

    base = {"method": "m", "label": "m()", "query_params": "{}", "duration_s": 1.0, "snr": "10"}
    results = pd.DataFrame([{**base, "reverb": "none", "exact": 0.5, "near": 0.6, "n_queries": 30},
                            {**base, "reverb": "0.6", "exact": 0.2, "near": 0.3, "n_queries": 30}])
    ops = pd.DataFrame([{"method": "m", "label": "m()", "query_params": "{}"}])
    [row] = condition_rates(results, ops, ["duration_s"]).to_dict("records")
    ci = wilson_interval(21, 60)
    assert row["exact"] == pytest.approx(21 / 60) and row["n_queries"] == 60
    assert (row["exact_lo"], row["exact_hi"]) == pytest.approx((ci.low, ci.high))
    assert row["exact_lo"] < row["exact"] < row["exact_hi"]


def test_speedups_over_an_audio_method_are_read_end_to_end() -> None:
    from bench.report.tables import latency_cost, speedup_table

    rows = []
    for method, exact, search, e2e, cand in (("flowhash", 0.5, 0.2, 40.0, 100), ("lsh", 0.5, 0.4, 40.2, 300),
                                             ("audfprint", 0.5, 30.0, 30.0, 50)):
        rows.append({"method": method, "label": f"{method}()", "query_params": "{}", "param_index": 0,
                     "exact": exact, "latency_mean_ms": search, "e2e_mean_ms": e2e, "candidates_mean": cand})
    points = pd.DataFrame(rows)
    assert latency_cost(points, "audfprint") == "e2e_mean_ms" and latency_cost(points, "lsh") == "latency_mean_ms"
    table = speedup_table(points).set_index("other")
    assert table.loc["audfprint", "lat_speedup"] == pytest.approx(30.0 / 40.0)  # not 30 / 0.2
    assert table.loc["lsh", "lat_speedup"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- a folder that is not a finished run


def _interrupted(root: Path, finished: int, run_json: bool = True) -> None:
    """A run folder as `bench run` leaves it when stopped after ``finished`` method configurations."""
    store = RunStore(root)
    if run_json:
        store.write_run_json({"run_id": root.name, "config": {"corpus": "synth"}, "environment": {},
                              "methods": ["exhaustive", "flowhash", "lsh"]})
    frame = pd.DataFrame({"x": [1]})
    for label in ["exhaustive", "flowhash(K=16)", "lsh(K=16,L=4)"][:finished]:
        store.save_part(label, frame, frame, frame, {"code": "0"})


@pytest.mark.parametrize("finished, run_json", [(2, True), (0, True), (1, False)])
def test_report_on_an_unfinished_run_says_so_and_how_to_finish_it(tmp_path: Path, finished: int, run_json: bool,
                                                                  capsys) -> None:
    root = tmp_path / "synth-abc"
    _interrupted(root, finished, run_json)
    assert (root / RUN_JSON).exists() == run_json
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {root}: unfinished run: {finished} method "
                                                   f"configuration(s) finished (parts/*.json), no results.parquet yet")
    assert f"finish it with: python -m bench run --run-dir {root} (with the --config and --method" in err
    assert ("methods: exhaustive, flowhash, lsh" in err) == run_json


def test_report_on_a_folder_with_nothing_of_a_run_says_it_is_not_a_run_folder(tmp_path: Path, capsys) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "notes.txt").write_text("not a run")
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {root} is not a run folder: it holds no run.json, results.parquet or parts/; give the "
                   f"folder `python -m bench run` wrote (its --run-dir, or reports/<corpus>-<hash>)\n")
