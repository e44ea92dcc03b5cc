"""``bench export``: a finished run's vectors, with exact neighbours, for ANN tools.

- ``ann-benchmarks``: one HDF5 file in ann-benchmarks' layout: ``train`` (the DB rows), ``test``
  (the query segments), ``neighbors`` and ``distances`` (the exact top ``count`` by angular
  distance, 1 - cosine), attributes ``type`` "dense", ``distance`` "angular", ``point_type``
  "float", ``dimension``. With ``codes``, a second file holds a hash method's K-bit codes as
  ann-benchmarks' ``bit`` point type (bool ``[n, K]``), with exact Hamming neighbours.
- ``parquet``: VectorDBBench's custom-dataset layout: ``train.parquet`` and ``test.parquet``
  (columns ``id`` int64, ``emb`` list<float32>), ``neighbors.parquet`` (``id``, ``neighbors_id``
  list<int64>, and ``neighbors_distance``).

Both write ``metadata.json``: the corpus, the encoder's identity, the query conditions, the audio's
licences, the row ids of the suite (``TRACK_ID:SEGMENT``, ``QUERY_ID:J``) and the exact search's
definition. Neighbours break ties by the lower id, as faiss's flat search does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np

from bench.run.config import config_from_dict
from bench.run.inputs import RunData, RunInputs, prepare_inputs
from bench.run.runner import fit_method
from datasets.cache import atomic_path, atomic_write_json
from encoders.precomputed import db_ids, query_ids
from methods.registry import resolve_grid

from .audio import licences

FORMATS = ("ann-benchmarks", "parquet")
CODE_METHODS = ("flowhash", "pca-sign", "itq")
DEFAULT_COUNT = 100


def exact_neighbours(db: np.ndarray, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, inner products) ``[nq, count]`` of each query's exact top ``count`` DB rows, on all cores."""
    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(np.ascontiguousarray(db, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), count)
    return ids.astype(np.int64), scores


def hamming_neighbours(db_bits: np.ndarray, query_bits: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, Hamming distances) ``[nq, count]`` of each query's exact top ``count`` codes."""
    width = -(-db_bits.shape[1] // 8) * 8
    index = faiss.IndexBinaryFlat(width)
    index.add(np.packbits(db_bits, axis=1, bitorder="little"))  # packbits pads the last byte with zeros
    distances, ids = index.search(np.packbits(query_bits, axis=1, bitorder="little"), count)
    return ids.astype(np.int64), distances.astype(np.int64)


def run_inputs(run_dir: Path | str, progress: bool = True) -> tuple[RunInputs, dict]:
    """The inputs of the finished run in ``run_dir`` (its embeddings from the cache, or embedded
    again), checked to come from the same encoder; and its run.json."""
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: not found; bench export reads a run folder made by bench run")
    info = json.loads(info_path.read_text())
    if info.get("kind") == "scale":
        raise ValueError(f"{run_dir}: a scaling run; bench export reads a run folder made by bench run")
    config = config_from_dict(info["config"], str(info_path))
    inputs = prepare_inputs(config, progress)
    recorded = info.get("encoder", {}).get("sha256")
    if recorded and recorded != inputs.encoder.sha256:
        raise ValueError(f"{info_path}: the run's encoder had sha256 {recorded[:16]}...; its config's encoder "
                         f"({config.encoder}) now has {inputs.encoder.sha256[:16]}...: export the run again")
    return inputs, info


def _data(inputs: RunInputs) -> RunData:
    return RunData(inputs.corpus, inputs.noise, inputs.rooms, inputs.queryset, inputs.db_segments, {}, {}, [])


def metadata(inputs: RunInputs, info: dict, count: int, codes: dict | None) -> dict:
    """What the exported files hold and where they come from."""
    return {"source_run": info.get("run_id"), "corpus": inputs.config.corpus,
            "encoder": {"name": inputs.encoder.name, "sha256": inputs.encoder.sha256,
                        "identity": inputs.encoder.identity},
            "queries": {"content_hash": inputs.queryset.content_hash, "conditions": inputs.config.queries.to_dict(),
                        "count": int(len(inputs.manifest))},
            "protocol": inputs.corpus.protocol.to_dict(), "licences": licences(_data(inputs)),
            "train": {"rows": int(len(inputs.db)), "ids": "TRACK_ID:SEGMENT (train_ids.txt)"},
            "test": {"rows": int(len(inputs.query_emb)), "ids": "QUERY_ID:J (test_ids.txt)"},
            "neighbors": {"count": count, "metric": "inner product of L2-normalised rows; angular distance = 1 - ip",
                          "ties": "lower id first"},
            "codes": codes}


def method_codes(inputs: RunInputs, name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(DB bits, query bits, description) of hash method ``name`` at its default build configuration
    (the run's grid for it, else its grid file), fitted on the run's train pairs (from the fit
    cache when the run fitted it)."""
    if name not in CODE_METHODS:
        raise ValueError(f"--codes {name!r}: allowed {', '.join(CODE_METHODS)}")
    build = resolve_grid(name, inputs.config.grids.get(name))["build"][0]
    method = fit_method(name, build, inputs).method
    db_bits = method.latent(inputs.db) > 0
    return db_bits, method.latent(inputs.query_emb) > 0, {"method": name, "build": build, "bits": db_bits.shape[1]}


def write_ann_benchmarks(path: Path, train: np.ndarray, test: np.ndarray, ids: np.ndarray, distances: np.ndarray,
                         distance: str, point_type: str) -> None:
    """One HDF5 file in ann-benchmarks' layout (module docstring), written atomically."""
    import h5py

    with atomic_path(path, suffix=".hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["type"] = "dense"
            f.attrs["distance"] = distance
            f.attrs["dimension"] = int(train.shape[1])
            f.attrs["point_type"] = point_type
            f.create_dataset("train", data=train)
            f.create_dataset("test", data=test)
            f.create_dataset("neighbors", data=ids.astype(np.int32))
            f.create_dataset("distances", data=distances.astype(np.float32))


def write_parquet(folder: Path, train: np.ndarray, test: np.ndarray, ids: np.ndarray, distances: np.ndarray) -> None:
    """VectorDBBench's custom-dataset files (module docstring), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rows(matrix: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1]).cast(
            pa.list_(pa.from_numpy_dtype(matrix.dtype)))

    for name, t in (("train", pa.table({"id": np.arange(len(train), dtype=np.int64), "emb": rows(train)})),
                    ("test", pa.table({"id": np.arange(len(test), dtype=np.int64), "emb": rows(test)})),
                    ("neighbors", pa.table({"id": np.arange(len(test), dtype=np.int64), "neighbors_id": rows(ids),
                                            "neighbors_distance": rows(distances.astype(np.float64))}))):
        with atomic_path(folder / f"{name}.parquet", suffix=".parquet") as tmp:
            pq.write_table(t, tmp)


def export_run(run_dir: Path | str, out: Path | str, fmt: str, count: int = DEFAULT_COUNT,
               codes: str | None = None, progress: bool = True) -> list[Path]:
    """Write the run's vectors in format ``fmt`` (``FORMATS``) under the folder ``out``; returns the
    files written. ``codes`` names a hash method whose bits are exported too (ann-benchmarks only)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: allowed {', '.join(FORMATS)}")
    if codes is not None and fmt != "ann-benchmarks":
        raise ValueError("--codes: the bit variant is written for --format ann-benchmarks only (ann-benchmarks' "
                         "'bit' point type); VectorDBBench's Parquet layout holds float vectors")
    if count < 1:
        raise ValueError(f"--count {count}: allowed >= 1")
    inputs, info = run_inputs(run_dir, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = min(count, len(inputs.db))
    ids, ip = exact_neighbours(inputs.db, inputs.query_emb, count)
    name = f"{inputs.config.corpus}-{inputs.encoder.dim}-angular"
    written: list[Path] = []
    code_info = None
    if fmt == "ann-benchmarks":
        written.append(out / f"{name}.hdf5")
        write_ann_benchmarks(written[-1], inputs.db, inputs.query_emb, ids, 1.0 - ip, "angular", "float")
        if codes is not None:
            db_bits, query_bits, code_info = method_codes(inputs, codes)
            hids, hdist = hamming_neighbours(db_bits, query_bits, count)
            written.append(out / f"{inputs.config.corpus}-{db_bits.shape[1]}-hamming-{codes}.hdf5")
            write_ann_benchmarks(written[-1], db_bits, query_bits, hids, hdist, "hamming", "bit")
    else:
        write_parquet(out, inputs.db, inputs.query_emb, ids, 1.0 - ip)
        written += [out / f"{n}.parquet" for n in ("train", "test", "neighbors")]
    for fname, rows in (("train_ids.txt", db_ids(inputs.db_segments["track_id"], inputs.db_segments["segment"])),
                        ("test_ids.txt", query_ids(inputs.query_index["query_id"], inputs.query_index["j"]))):
        with atomic_path(out / fname) as tmp:
            tmp.write_text("".join(f"{i}\n" for i in rows))
        written.append(out / fname)
    atomic_write_json(out / "metadata.json", metadata(inputs, info, count, code_info))
    written.append(out / "metadata.json")
    return written
