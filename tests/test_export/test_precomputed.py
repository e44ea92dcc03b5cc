"""``encoder: precomputed:DIR``: vectors written outside the suite are read back checked, and the
built-in encoder's own vectors reproduce its run bit for bit."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.export.audio import export_audio
from bench.run.runner import run_benchmark
from datasets.protocol import Protocol
from encoders.interface import EncoderError
from encoders.precomputed import PrecomputedEncoder, db_ids
from encoders.registry import open_encoder


@pytest.fixture(scope="package")
def exported(small):
    """(config, export folder, built-in run folder, precomputed run folder)."""
    config, root = small
    out = root / "audio-export"
    manifest = export_audio(config, out, embed=True, progress=False)
    builtin = run_benchmark(config, ["lsh", "pca-sign"], run_dir=root / "run-builtin", progress=False)
    pre = replace(config, encoder=f"precomputed:{out / 'vectors'}")
    precomputed = run_benchmark(pre, ["lsh", "pca-sign"], run_dir=root / "run-precomputed", progress=False)
    return config, out, manifest, Path(builtin.root), Path(precomputed.root)


def test_precomputed_vectors_of_the_builtin_encoder_reproduce_its_hit_rates_bit_for_bit(exported) -> None:
    _, _, _, builtin, precomputed = exported
    a, b = (pd.read_parquet(d / "outcomes.parquet").astype({"query_params": str})
            .sort_values(["label", "query_params", "query_id"]).reset_index(drop=True) for d in (builtin, precomputed))
    cols = ["exact", "seg_exact", "near", "seg_near", "track", "seg_track", "score", "candidates",
            "recall1", "recall10"]
    assert set(a["label"]) == set(b["label"]) and len(a) == len(b) > 0 and a["exact"].any()
    assert any(label.startswith("pca-sign") for label in a["label"])  # a fitted method: the train pairs too
    pd.testing.assert_frame_equal(a[["label", "query_id", *cols]], b[["label", "query_id", *cols]], check_exact=True)
    info = json.loads((precomputed / "run.json").read_text())
    assert info["encoder"]["identity"]["name"] == "precomputed"
    assert np.isnan(info["encoder"]["ms_per_segment"])  # no encoder ran, so none was timed


def test_the_export_lays_out_audio_segments_and_ids_an_outside_encoder_can_follow(exported) -> None:
    config, out, manifest, _, _ = exported
    protocol = Protocol(hop_s=config.hop_s)
    tracks = pd.read_parquet(out / "db" / "tracks.parquet")
    segments = pd.read_parquet(out / "db" / "segments.parquet")
    assert manifest["counts"]["db_segments"] == len(segments) == len(np.load(out / "vectors" / "db.npy"))
    assert (out / "vectors" / "db.ids").read_text().splitlines() == list(segments["id"])
    # a segment cut from the exported track at its start sample embeds to the exported vector
    encoder = open_encoder(config.encoder, protocol)
    row = segments.iloc[len(segments) // 2]
    audio, rate = sf.read(out / tracks.set_index("track_id").loc[row["track_id"], "file"], dtype="float32")
    assert rate == protocol.sample_rate
    cut = audio[row["start_sample"]:row["start_sample"] + protocol.segment_samples][None]
    np.testing.assert_allclose(encoder.embed(cut)[0], np.load(out / "vectors" / "db.npy")[row["row"]], atol=1e-5)
    queries = pd.read_parquet(out / "queries" / "segments.parquet")
    assert all((out / "queries" / "audio" / f"{q}.flac").is_file() for q in queries["query_id"].unique())
    anchors = np.load(out / "train" / "fit-anchors.npy")
    assert anchors.shape == (config.train_pairs, protocol.segment_samples)


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "vectors"
    shutil.copytree(folder, target)
    return target


def _expected(config, out: Path) -> list[str]:
    return list(pd.read_parquet(out / "db" / "segments.parquet")["id"])


@pytest.mark.parametrize("damage, message", [
    ("drop_row", "rows, but db.ids lists"),
    ("count", "rows; this run needs"),
    ("dimension", "expected [rows,"),
    ("nan", "holds NaN or infinite values"),
    ("order", "the run expects"),
])
def test_damaged_vectors_are_refused_naming_the_file_and_the_first_bad_row(exported, tmp_path: Path, damage: str,
                                                                           message: str) -> None:
    config, out, _, _, _ = exported
    folder = _copy(out / "vectors", tmp_path)
    db = np.load(folder / "db.npy")
    ids = (folder / "db.ids").read_text().splitlines()
    if damage == "drop_row":
        np.save(folder / "db.npy", db[:-1])
    elif damage == "count":
        np.save(folder / "db.npy", db[:-1])
        (folder / "db.ids").write_text("".join(f"{i}\n" for i in ids[:-1]))
    elif damage == "dimension":
        np.save(folder / "db.npy", db[:, :-1])
    elif damage == "nan":
        db[7, 3] = np.nan
        np.save(folder / "db.npy", db)
    elif damage == "order":
        ids[4], ids[5] = ids[5], ids[4]
        (folder / "db.ids").write_text("".join(f"{i}\n" for i in ids))
    encoder = PrecomputedEncoder(folder)
    with pytest.raises(EncoderError, match="db") as err:
        encoder.rows("db", _expected(config, out))
    assert message in str(err.value)
    assert str(folder) in str(err.value)
    if damage == "nan":
        assert "row 7" in str(err.value)
    if damage == "order":
        assert "row 4" in str(err.value)


def test_vectors_of_another_protocol_or_without_their_description_are_refused(exported, tmp_path: Path) -> None:
    config, out, _, _, _ = exported
    folder = _copy(out / "vectors", tmp_path)
    with pytest.raises(EncoderError, match="hop must match"):
        open_encoder(f"precomputed:{folder}", Protocol(hop_s=0.25))
    (folder / "vectors.json").unlink()
    with pytest.raises(EncoderError, match="no vectors.json"):
        open_encoder(f"precomputed:{folder}", Protocol())


def test_precomputed_vectors_cannot_embed_new_audio(exported) -> None:
    _, out, _, _, _ = exported
    encoder = PrecomputedEncoder(out / "vectors")
    with pytest.raises(EncoderError, match="cannot embed new audio"):
        encoder.embed(np.zeros((1, 8000), np.float32))
    assert db_ids(["a"], [3]) == ["a:3"]
