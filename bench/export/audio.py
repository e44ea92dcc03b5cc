"""``bench export-audio``: everything an outside encoder embeds for a run, with the ids of every row.

The folder (docs/adding-an-encoder.md, "Precomputed vectors"):

    manifest.json               format, protocol, corpus, query set, counts, pair recipe, licences
    db/tracks.parquet           one row per DB track: track_id, file, samples, and its metadata
    db/audio/NNNNNN.wav         each DB track at the protocol's sample rate, mono float32 (the exact
                                samples the suite cuts)
    db/segments.parquet         one row per DB segment: row, id ("TRACK_ID:SEGMENT"), track_id,
                                segment, start_sample
    queries/audio/QUERY_ID.flac the degraded queries, as the suite reads them
    queries/segments.parquet    one row per query segment: row, id ("QUERY_ID:J"), query_id, j, start_sample
    train/PART-anchors.npy, train/PART-positives.npy   the train pairs' waveforms, float32
                                [pairs, segment samples], PART "fit" or "held-out" (ids "PART:I")
    vectors/                    with --embed: the run's own encoder's rows in the layout
                                ``encoder: precomputed:DIR`` reads (``encoders.precomputed``)

Files are written atomically and kept when present, so an interrupted export resumes; the manifest
is written last.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from bench.run.config import RunConfig
from bench.run.inputs import RunData, expected_query_index, open_run_data
from datasets.cache import atomic_path, atomic_save_npy, atomic_write_json, atomic_write_parquet, stable_hash
from datasets.progress import tqdm
from encoders.embed import embed_db, embed_queries, load_checked
from encoders.interface import Encoder
from encoders.pairs import (
    RECIPE_FIELDS,
    embed_train_pairs,
    pair_recipe,
    pair_sampler,
    shard_size,
    shard_waveforms,
)
from encoders.precomputed import FORMAT as VECTORS_FORMAT
from encoders.precomputed import PAIR_PARTS, PrecomputedEncoder, db_ids, pair_ids, query_ids, write_ids
from encoders.registry import open_encoder

FORMAT = "flowhash-bench-export-audio"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def licences(data: RunData) -> list[dict]:
    """The distinct (package, version, licence) of the DB and query tracks that record them."""
    tracks = set(data.db_segments["track_id"]) | set(data.queryset.manifest()["track_id"])
    seen = {tuple((k, str(t.meta[k])) for k in ("package", "version", "licence") if k in t.meta)
            for t in data.corpus.tracks() if t.track_id in tracks}
    return [dict(entry) for entry in sorted(seen) if entry]


def _db_audio(data: RunData, out: Path, progress: bool) -> pd.DataFrame:
    protocol = data.corpus.protocol
    track_ids = list(dict.fromkeys(data.db_segments["track_id"]))
    rows = []
    for i, track_id in enumerate(tqdm(track_ids, desc="export DB audio", unit="track", disable=not progress)):
        file = f"db/audio/{i:06d}.wav"
        path = out / file
        if path.exists():
            samples = sf.info(str(path)).frames
        else:
            audio = load_checked(data.corpus, track_id)
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(str(tmp), audio, protocol.sample_rate, subtype="FLOAT")
            samples = len(audio)
        meta = {k: str(v) for k, v in data.corpus.track(track_id).meta.items()}
        rows.append({"track_id": track_id, "file": file, "samples": int(samples), **meta})
    return pd.DataFrame(rows)


def _query_audio(data: RunData, out: Path, progress: bool) -> None:
    for query_id in tqdm(data.queryset.manifest()["query_id"], desc="export query audio", unit="query",
                         disable=not progress):
        target = out / "queries" / "audio" / f"{query_id}.flac"
        if not target.exists():
            with atomic_path(target, suffix=".flac") as tmp:
                shutil.copyfile(data.queryset.root / "audio" / f"{query_id}.flac", tmp)


def _pair_audio(config: RunConfig, data: RunData, encoder: Encoder, out: Path, progress: bool) -> None:
    for part, n in (("fit", config.train_pairs), ("held-out", config.held_out_pairs)):
        paths = [out / "train" / f"{part}-{side}.npy" for side in ("anchors", "positives")]
        if all(p.exists() for p in paths):
            continue
        sampler = pair_sampler(encoder, data.corpus, data.noise, data.rooms, part, config.seed, progress)
        shard = shard_size(n)
        anchors, positives = [], []
        for shard_no in tqdm(range(-(-n // shard)), desc=f"export train pairs ({part})", unit="shard",
                             disable=not progress):
            for a, p in shard_waveforms(sampler, config.seed, shard_no, shard):
                anchors.append(a)
                positives.append(p)
        atomic_save_npy(paths[0], np.concatenate(anchors)[:n].astype(np.float32))
        atomic_save_npy(paths[1], np.concatenate(positives)[:n].astype(np.float32))


def write_vectors(folder: Path, encoder: Encoder, config: RunConfig, data: RunData, progress: bool = True) -> None:
    """The run's own encoder's rows (DB, query segments, train pairs) in the precomputed layout."""
    protocol = data.corpus.protocol
    folder.mkdir(parents=True, exist_ok=True)
    db, _ = embed_db(encoder, data.corpus, data.db_segments, progress)
    queries, index, _ = embed_queries(encoder, data.queryset, protocol, progress)
    atomic_save_npy(folder / "db.npy", db)
    write_ids(folder / "db.ids", db_ids(data.db_segments["track_id"], data.db_segments["segment"]))
    atomic_save_npy(folder / "queries.npy", queries)
    write_ids(folder / "queries.ids", query_ids(index["query_id"], index["j"]))
    for part, n in (("fit", config.train_pairs), ("held-out", config.held_out_pairs)):
        anchors, positives = embed_train_pairs(encoder, data.corpus, data.noise, data.rooms, n, config.seed,
                                               progress, part=part)
        atomic_save_npy(folder / f"train-{part}-anchors.npy", anchors)
        atomic_save_npy(folder / f"train-{part}-positives.npy", positives)
        write_ids(folder / f"train-{part}.ids", pair_ids(part, n))
    atomic_write_json(folder / VECTORS_FORMAT, {
        "encoder": encoder.name, "dim": encoder.dim, "metric": encoder.metric, "protocol": protocol.to_dict(),
        "identity": encoder.identity, "record": {"config": encoder.record.get("config", {})}})


def export_audio(config: RunConfig, out: Path | str, embed: bool = False, pairs: bool = True,
                 progress: bool = True) -> dict:
    """Write the folder of the module docstring for ``config``'s run; returns its manifest.

    The train pairs are drawn with the degradation recipe of the config's encoder (as the run
    draws them); ``pairs=False`` leaves them out (runs of unfitted methods only need none).
    ``embed=True`` also writes the config's encoder's own vectors under ``vectors/``."""
    out = Path(out)
    data = open_run_data(config, progress)
    protocol = data.corpus.protocol
    encoder = open_encoder(config.encoder, protocol, config.device, config.encoder_params)
    if embed and isinstance(encoder, PrecomputedEncoder):
        raise ValueError(f"--embed: the config's encoder is {encoder.label}, which cannot embed audio; choose a "
                         f"checkpoint or a plugin encoder")
    tracks = _db_audio(data, out, progress)
    atomic_write_parquet(out / "db" / "tracks.parquet", tracks)
    seg = data.db_segments.reset_index(drop=True)
    segment = seg["segment"].to_numpy(np.int64)
    atomic_write_parquet(out / "db" / "segments.parquet", pd.DataFrame({
        "row": np.arange(len(seg)), "id": db_ids(seg["track_id"], segment), "track_id": seg["track_id"],
        "segment": segment, "start_sample": segment * protocol.hop_samples}))
    _query_audio(data, out, progress)
    index = expected_query_index(data)
    atomic_write_parquet(out / "queries" / "segments.parquet", pd.DataFrame({
        "row": np.arange(len(index)), "id": query_ids(index["query_id"], index["j"]), "query_id": index["query_id"],
        "j": index["j"], "start_sample": index["j"] * protocol.hop_samples}))
    if pairs:
        _pair_audio(config, data, encoder, out, progress)
    if embed:
        write_vectors(out / "vectors", encoder, config, data, progress)
    recipe = pair_recipe(encoder, config.seed)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "protocol": protocol.to_dict(),
        "corpus": {"name": data.corpus.name, "identity_sha": stable_hash(data.corpus.identity(), n=32)},
        "queries": {"content_hash": data.queryset.content_hash, "config": config.queries.to_dict(),
                    "count": int(len(data.queryset.manifest()))},
        "counts": {"db_tracks": int(len(tracks)), "db_segments": int(len(seg)), "query_segments": int(len(index)),
                   **({f"train_pairs_{p}": n for p, n in zip(PAIR_PARTS, (config.train_pairs, config.held_out_pairs))}
                      if pairs else {})},
        "pairs": {"seed": config.seed, "recipe": {k: getattr(recipe, k) for k in RECIPE_FIELDS},
                  "recipe_of": encoder.label} if pairs else None,
        "ids": {"db": "TRACK_ID:SEGMENT", "queries": "QUERY_ID:J", "train": "PART:I"},
        "licences": licences(data), "config": config.to_dict(), "vectors": "vectors" if embed else None,
    }
    atomic_write_json(out / MANIFEST, json.loads(json.dumps(manifest, default=str)))
    return manifest
