"""Encoder plugins: every registered encoder (and the template) passes one conformance check; a
plugin in a file outside the repository runs `bench run` end to end; bad plugins are refused."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from datasets.protocol import Protocol
from encoders.builtin.checkpoint import save_checkpoint, untrained_encoder
from encoders.builtin.transformer import TransformerConfig
from encoders.embed import embed_segments
from encoders.interface import Encoder, EncoderError, check_declaration
from encoders.registry import encoder_names, load_encoder_plugin, open_encoder

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "encoder_template.py"


def _segments(n: int, protocol: Protocol, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(protocol.segment_samples) / protocol.sample_rate
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (n, 1)) * t) * 0.3
    return (tones + 0.05 * rng.standard_normal((n, len(t)))).astype(np.float32)


TRANSFORMER = "a transformer checkpoint"


@pytest.mark.parametrize("spec", [*encoder_names(), str(TEMPLATE), TRANSFORMER])
def test_every_registered_encoder_and_the_template_conform(spec: str, tmp_path: Path) -> None:
    protocol = Protocol()
    if spec == TRANSFORMER:  # the built-in plugin's second architecture, from its own checkpoint file
        model = untrained_encoder(protocol, TransformerConfig(depth=2), seed=1).model
        save_checkpoint(tmp_path / "transformer.pt", model, protocol, {"trained": False})
        spec = str(tmp_path / "transformer.pt")
    encoder = open_encoder(spec, protocol)
    assert isinstance(encoder, Encoder)
    check_declaration(encoder)
    x = _segments(70, protocol)
    rows = embed_segments(encoder, x, batch_size=32)  # three batches, the last short
    assert rows.shape == (70, encoder.dim) and rows.dtype == np.float32 and np.all(np.isfinite(rows))
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(embed_segments(encoder, x[5:6], batch_size=1)[0], rows[5], atol=1e-4)  # batch-free
    assert np.array_equal(embed_segments(encoder, x, batch_size=32), rows)  # deterministic
    assert np.mean(rows[::2] @ rows[1::2].T) < 0.99  # different audio, different rows
    identity = encoder.identity
    assert {"name", "module_sha256", "weights_sha256", "params"} <= set(identity)
    assert len(encoder.sha256) >= 32
    json.dumps(identity)  # recorded in run.json
    if spec != str(TEMPLATE):  # worker processes get a pickled encoder (a plugin file's class is not importable)
        assert np.array_equal(embed_segments(pickle.loads(pickle.dumps(encoder)), x), rows)


def test_the_identity_follows_the_module_and_the_parameters(tmp_path: Path) -> None:
    a = open_encoder(str(TEMPLATE), Protocol(), params={"dim": 32})
    b = open_encoder(str(TEMPLATE), Protocol(), params={"dim": 32, "seed": 1})
    assert a.sha256 != b.sha256 and a.identity["module_sha256"] == b.identity["module_sha256"]
    edited = tmp_path / "edited.py"
    edited.write_text(TEMPLATE.read_text().replace('name = "random-mel"', 'name = "random-mel-2"') + "\n# changed\n")
    c = open_encoder(str(edited), Protocol(), params={"dim": 32})
    assert c.identity["module_sha256"] != a.identity["module_sha256"] and c.sha256 != a.sha256


BAD_SHAPE = '''
import numpy as np
from encoders.interface import Encoder
from encoders.registry import register_encoder

@register_encoder
class Bad(Encoder):
    name = "bad-shape"
    dim = 16
    def embed(self, waveforms):
        return np.zeros((len(waveforms), 8), np.float32)
'''


def test_bad_plugins_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(EncoderError, match="registered no encoder"):
        load_encoder_plugin(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(EncoderError, match="import failed: RuntimeError: boom"):
        load_encoder_plugin(broken)
    with pytest.raises(FileNotFoundError):
        open_encoder(str(tmp_path / "missing.py"), Protocol())
    bad = tmp_path / "bad_shape.py"
    bad.write_text(BAD_SHAPE)
    encoder = open_encoder(str(bad), Protocol())
    with pytest.raises(EncoderError, match=r"shape \(2, 8\) for 2 segments; expected \(2, 16\)"):
        embed_segments(encoder, np.zeros((2, 8000), np.float32))
    with pytest.raises(EncoderError, match="do not fit its constructor"):
        open_encoder(str(TEMPLATE), Protocol(), params={"width": 3})
    with pytest.raises(EncoderError, match="the run's protocol has"):
        open_encoder(str(TEMPLATE), Protocol(sample_rate=16000))
    with pytest.raises(EncoderError, match="encoder_params apply to plugin encoders only"):
        open_encoder("synth-default", Protocol(), params={"dim": 3})


def test_an_installed_package_registers_an_encoder_by_entry_point(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fhb_enc_demo.py").write_text(TEMPLATE.read_text().replace('name = "random-mel"', 'name = "ep-mel"'))
    info = site / "fhb_enc_demo-0.1.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text("Metadata-Version: 2.1\nName: fhb-enc-demo\nVersion: 0.1\n")
    info.joinpath("entry_points.txt").write_text("[bench.encoders]\nep-mel = fhb_enc_demo\n")
    monkeypatch.syspath_prepend(str(site))
    assert "ep-mel" in encoder_names()
    encoder = open_encoder("ep-mel", Protocol(), params={"dim": 16})
    x = _segments(3, Protocol())
    # an importable class pickles, so worker processes and Ray can run it
    assert np.array_equal(pickle.loads(pickle.dumps(encoder)).embed(x), encoder.embed(x))
    info.joinpath("entry_points.txt").write_text("[bench.encoders]\nep-broken = fhb_no_such_module\n")
    with pytest.raises(EncoderError, match="entry point 'ep-broken' = 'fhb_no_such_module'.*fhb-enc-demo"):
        encoder_names()


@pytest.mark.slow
def test_a_plugin_encoder_in_a_file_outside_the_repository_runs_bench_run_end_to_end(tmp_path: Path) -> None:
    from tests.helpers import write_rirs

    plugin = tmp_path / "elsewhere" / "my_encoder.py"
    plugin.parent.mkdir()
    shutil.copy(TEMPLATE, plugin)
    write_rirs(tmp_path / "rirs")
    config = {"synth_tracks": 10, "rooms": str(tmp_path / "rirs"), "encoder": str(plugin),
              "encoder_params": {"dim": 64}, "train_pairs": 100, "held_out_pairs": 20,
              "queries": {"durations": [2.0], "snrs": ["clean", 10], "reverbs": ["none"], "per_cell": 5, "seed": 4},
              "timing": {"warmup": 1, "repeats": 1, "latency_queries": 6, "batch_repeats": 0},
              "grids": {"lsh": {"build": [{"K": 8, "L": 2}], "query": [{"radius": 0}, {"radius": 1}]}}}
    (tmp_path / "run.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(tmp_path / "run.yml"), "--method",
                           "lsh", "--run-dir", str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["encoder"]["name"] == "random-mel" and info["encoder"]["identity"]["params"]["dim"] == 64
    assert info["encoder"]["ms_per_segment"] > 0
    assert (tmp_path / "run" / "report.md").is_file()
