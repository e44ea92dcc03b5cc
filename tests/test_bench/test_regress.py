"""`bench regress` on a tiny real scenario: baseline creation, a passing check, exact reproducibility
of the deterministic metrics, planted regressions that must fail, and bad baseline files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.cli.main import main
from bench.regress.measure import DETERMINISTIC
from tests.helpers import write_rirs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scenario file (16 synth tracks, measured-style RIRs from files) and a module-wide cache."""
    root = tmp_path_factory.mktemp("regress")
    write_rirs(root / "rirs")
    scenario = {
        "config": {
            "synth_tracks": 16, "rooms": str(root / "rirs"), "train_pairs": 400, "seed": 0,
            "queries": {"durations": [1, 2], "snrs": ["clean", 5], "reverbs": ["none", 0.3], "per_cell": 8, "seed": 1},
            "timing": {"threads": 1, "warmup": 2, "repeats": 1, "latency_queries": 16, "batch_repeats": 1},
            "grids": {
                "flowhash": {"build": [{"K": 8, "n_blocks": 4}], "query": [{"n_probes": p} for p in (1, 2, 4, 8)]},
                "lsh": {"build": [{"K": 8, "L": 2}], "query": [{"radius": r} for r in (0, 1, 2)]},
                "ivfpq": {"build": [{"nlist": 8, "M": 8, "nbits": 4}], "query": [{"nprobe": p} for p in (1, 2, 4, 8)]},
            },
        },
        "focus": "flowhash", "versus": ["lsh", "ivfpq"], "rounds": 3,
        "compiled": [{"method": "flowhash", "build": {"K": 8, "n_blocks": 4}, "query": {"n_probes": 4}}],
        # no timed assertion in a test: wall-clock ratios are measured and printed, but only the
        # benchmark itself (`bench regress` in .ci/run) holds them to a tolerance
        "tolerances": {"latency_speedup_min_ratio": 0.0, "kernel_speedup_min_ratio": 0.0},
    }
    (root / "scenario.yml").write_text(yaml.safe_dump(scenario))
    return root


@pytest.fixture
def shared_cache(scenario_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Reuse one cache across this module's tests (corpus, query set and embeddings are built once)."""
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(scenario_root / "cache"))
    return scenario_root


def regress(root: Path, *args: str) -> int:
    return main(["regress", "--scenario", str(root / "scenario.yml"), "--baseline", str(root / "ci.json"),
                 "--no-progress", *args])


@pytest.fixture(scope="module")
def baseline_made(scenario_root: Path) -> Path:
    """Marker that the module's baseline exists (made by the first test)."""
    return scenario_root / "ci.json"


def test_update_creates_baseline_and_unchanged_code_passes(shared_cache: Path, capsys) -> None:
    root = shared_cache
    assert regress(root, "--update", "-m", "tiny baseline for the tests", "--save", str(root / "m1.json")) == 0
    data = json.loads((root / "ci.json").read_text())
    assert data["made"]["message"] == "tiny baseline for the tests"
    assert "commit" in data["made"]["git"] and data["made"]["environment"]["libraries"]["torch"]
    kinds = {m["kind"] for m in data["metrics"].values()}
    assert kinds == {"hit_rate", "candidate_speedup", "latency_speedup", "kernel_speedup", "expected_vs_random",
                     "normalised_entropy"}
    assert {"candidate_speedup flowhash over lsh", "latency_speedup flowhash over ivfpq",
            "hit_rate flowhash all", "hit_rate lsh 1s snr=5 reverb=0.3",
            'kernel_speedup flowhash(K=8,n_blocks=4) at {"n_probes": 4}'} <= set(data["metrics"])
    capsys.readouterr()

    assert regress(root, "--save", str(root / "m2.json")) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "REGRESSION" not in out
    assert "note: " not in out  # same machine and libraries as the baseline: no environment note
    for column in ("baseline", "now", "allowed", "verdict"):
        assert column in out

    # deterministic metrics reproduce exactly; the wall-clock ones are measured afresh
    m1, m2 = (json.loads((root / f).read_text())["metrics"] for f in ("m1.json", "m2.json"))
    deterministic = {k for k, m in m1.items() if m["kind"] in DETERMINISTIC}
    assert len(deterministic) > 20
    assert {k: m1[k]["value"] for k in deterministic} == {k: m2[k]["value"] for k in deterministic}
    assert all(np.isfinite(m2[k]["value"]) and m2[k]["value"] > 0 for k in m2
               if k.startswith(("latency_speedup", "kernel_speedup")))


def _planted(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    from methods import flowhash

    if what == "a flow that ignores its input":  # (a random projection instead of the flow is no worse here)
        monkeypatch.setattr(flowhash.FlowHash, "latent", lambda self, x: np.random.default_rng(len(x)).standard_normal(
            (len(x), self.params["K"])).astype(np.float32))
    else:  # a hash table that probes every bucket
        def every_bucket(z, n_probes, kernels="numpy"):
            n_bits = z.shape[1]
            return np.broadcast_to(np.arange(2 ** n_bits, dtype=np.int64), (z.shape[0], 2 ** n_bits))
        monkeypatch.setattr(flowhash, "latent_probes", every_bucket)


@pytest.mark.parametrize("what, metric", [
    ("a flow that ignores its input", "hit_rate flowhash"),
    ("probe every bucket", "candidate_speedup flowhash over lsh"),
])
def test_planted_regression_fails_naming_the_metric(shared_cache: Path, baseline_made: Path, what: str,
                                                    metric: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    if not baseline_made.exists():
        assert regress(shared_cache, "--update", "-m", "baseline") == 0
    capsys.readouterr()
    _planted(monkeypatch, what)
    assert regress(shared_cache) == 1
    out = capsys.readouterr().out
    named = [line for line in out.splitlines() if line.startswith("REGRESSION: ")]
    assert any(line.startswith(f"REGRESSION: {metric}") for line in named), out


def test_missing_or_malformed_baseline_is_a_clear_error(shared_cache: Path, tmp_path: Path, capsys) -> None:
    scenario = str(shared_cache / "scenario.yml")
    missing = tmp_path / "none.json"
    assert main(["regress", "--scenario", scenario, "--baseline", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"baseline file {missing} does not exist" in err and "--update" in err

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "metrics": ')
    assert main(["regress", "--scenario", scenario, "--baseline", str(bad)]) == 2
    assert f"{bad}: not valid JSON" in capsys.readouterr().err

    bad.write_text(json.dumps({"format": 1, "metrics": {"x": {"kind": "speed", "value": 1}}, "scenario": {},
                               "scenario_hash": "0", "made": {}}))
    assert main(["regress", "--scenario", scenario, "--baseline", str(bad)]) == 2
    assert "metrics['x'] needs 'kind'" in capsys.readouterr().err

    other = json.loads((shared_cache / "ci.json").read_text()) if (shared_cache / "ci.json").exists() else None
    if other is not None:
        other["scenario_hash"], other["scenario"]["rounds"] = "0" * 16, 99
        bad.write_text(json.dumps(other))
        assert main(["regress", "--scenario", scenario, "--baseline", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "made for another scenario" in err and "differing fields: ['rounds']" in err

    assert main(["regress", "--scenario", scenario, "--baseline", str(tmp_path / "new.json"), "--update"]) == 2
    assert "--update needs a message" in capsys.readouterr().err
    assert not (tmp_path / "new.json").exists()


def test_default_scenario_and_committed_baseline_agree() -> None:
    from bench.regress.decide import DEFAULT_BASELINE, load_baseline
    from bench.regress.scenario import load_scenario

    repo = Path(__file__).resolve().parents[2]
    data = load_baseline(repo / DEFAULT_BASELINE, load_scenario())
    assert data["made"]["message"] and data["metrics"]
