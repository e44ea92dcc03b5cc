"""``bench export``: a run's vectors in ann-benchmarks' HDF5 and VectorDBBench's Parquet layouts,
with neighbours equal to exhaustive search's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from bench.export.vectors import export_run
from bench.run.runner import run_benchmark


@pytest.fixture(scope="package")
def finished_run(small) -> Path:
    config, root = small
    return Path(run_benchmark(config, ["lsh"], run_dir=root / "run-export", progress=False).root)


def _exhaustive(train: np.ndarray, test: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    scores = test.astype(np.float64) @ train.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
    return order, np.take_along_axis(scores, order, axis=1)


def test_ann_benchmarks_file_has_its_layout_and_exhaustive_neighbours(finished_run: Path, tmp_path: Path) -> None:
    written = export_run(finished_run, tmp_path, "ann-benchmarks", count=20, codes="pca-sign", progress=False)
    floats = next(p for p in written if p.name.endswith("-angular.hdf5"))
    with h5py.File(floats, "r") as f:
        assert set(f) == {"train", "test", "neighbors", "distances"}
        assert (f.attrs["distance"], f.attrs["point_type"], f.attrs["type"]) == ("angular", "float", "dense")
        train, test, neighbors, distances = (f[k][:] for k in ("train", "test", "neighbors", "distances"))
        assert f.attrs["dimension"] == train.shape[1]
    assert train.shape[1] == test.shape[1] and neighbors.shape == distances.shape == (len(test), 20)
    ids, scores = _exhaustive(train, test, 20)
    np.testing.assert_allclose(distances, 1.0 - scores, atol=1e-5)
    # the same neighbours, except where two DB rows tie in score (either order is exact)
    same = neighbors == ids
    tied = np.isclose(np.take_along_axis(test @ train.T, neighbors, axis=1), scores, atol=1e-6)
    assert same.mean() > 0.99 and np.all(same | tied)
    ids_file = (tmp_path / "train_ids.txt").read_text().splitlines()
    assert len(ids_file) == len(train) and ids_file[0].rsplit(":", 1)[1].isdigit()
    bits = next(p for p in written if "hamming" in p.name)
    with h5py.File(bits, "r") as f:
        assert (f.attrs["distance"], f.attrs["point_type"]) == ("hamming", "bit")
        db_bits, q_bits, hdist = f["train"][:], f["test"][:], f["distances"][:]
    assert db_bits.dtype == bool and db_bits.shape == (len(train), 8)
    brute = np.sort((q_bits[:, None, :] != db_bits[None, :, :]).sum(axis=2), axis=1)[:, :20]
    np.testing.assert_array_equal(hdist, brute)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["codes"]["method"] == "pca-sign" and meta["encoder"]["identity"]["name"] == "checkpoint"
    assert meta["queries"]["conditions"]["per_cell"] == 5


def test_parquet_export_follows_vectordbbench_and_the_cli_writes_it(finished_run: Path) -> None:
    out = finished_run.parent / f"{finished_run.name}-export-parquet"  # the default: beside the run, not in it
    done = subprocess.run([sys.executable, "-m", "bench", "export", str(finished_run), "--format", "parquet",
                           "--count", "10", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not any(p.name.startswith("export") for p in finished_run.iterdir())
    train, test, neighbors = (pd.read_parquet(out / f"{n}.parquet") for n in ("train", "test", "neighbors"))
    assert list(train.columns) == ["id", "emb"] and list(neighbors.columns)[:2] == ["id", "neighbors_id"]
    train_m, test_m = np.stack(train["emb"]), np.stack(test["emb"])
    ids, _ = _exhaustive(train_m, test_m, 10)
    assert (np.stack(neighbors["neighbors_id"]) == ids).mean() > 0.99


def test_export_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "export", str(tmp_path), "--format", "parquet"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "run.json" in done.stderr
