"""A scaling run's DB: the run's own DB rows (query tracks and the corpus's other DB tracks) then
the distractors, all embedded in one on-disk store, so that the DB of size N is its first N rows."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import pandas as pd

from bench.run.executor import Executor
from bench.run.inputs import RunInputs
from datasets.cache import cache_dir, stable_hash
from datasets.distractors import FILL_SOURCE, REAL_SOURCES, DistractorSet, assemble_distractors, distractor_segments
from encoders.embed import db_identity
from encoders.interface import EncoderError
from encoders.precomputed import PrecomputedEncoder
from encoders.store import CHUNK_ROWS, EmbeddingStore, fill_store

from .config import Distractors, ScaleConfig
from .fingerprint_model import FORMAT as MODEL_FORMAT
from .fingerprint_model import FingerprintModel, fit_fingerprint_model, load_fingerprint_model, track_rows
from .fingerprint_stats import fingerprint_stats

CORPUS_SOURCE = "corpus"
MODEL_SOURCE = "model-distractors"
MODEL_SEED_OFFSET = 2_000_003  # the model's draws use the run seed plus this
STATS_ROWS = 200_000
DISTRACTOR_SOURCES = frozenset({*REAL_SOURCES, FILL_SOURCE})


@dataclass
class ScaleDatabase:
    """Rows in DB order: ``table`` (source, track_id, key, segment, real) and their embeddings
    (``store.rows``, memory-mapped); the first ``n_base`` rows are the run's own DB."""

    table: pd.DataFrame
    store: EmbeddingStore
    distractors: DistractorSet
    n_base: int
    model: dict | None = field(default=None)  # the fingerprint model's fit, when it fills the DB

    def __len__(self) -> int:
        return len(self.table)

    def facts(self, n: int) -> dict:
        """What the DB of the first ``n`` rows holds: segments by kind, tracks."""
        part = self.table.iloc[:n]
        dist = part.iloc[self.n_base:]
        return {"n_db": n, "corpus_segments": min(n, self.n_base), "distractor_segments": len(dist),
                "real_distractor_segments": int(dist["real"].sum()),
                "synthetic_distractor_segments": int((~dist["real"]).sum()),
                "tracks": int(part["key"].nunique())}


def build_scale_db(config: ScaleConfig, inputs: RunInputs, progress: bool = True,
                   executor: Executor | None = None) -> ScaleDatabase:
    """Assemble the distractors the largest size needs, and embed every row into the store
    (``cache_dir("embeddings", "store", <key>)``), reusing the run's own DB embeddings; the rows
    are embedded on the ``executor``'s workers when it has any (Ray's), else in ``config.workers``
    processes. With ``distractors.model``, see :func:`build_model_db`."""
    if config.distractors.model:
        return build_model_db(config, inputs, progress, executor)
    if isinstance(inputs.encoder, PrecomputedEncoder):
        raise EncoderError(f"{inputs.encoder.label}: a scaling run embeds distractors, which precomputed vectors "
                           f"do not hold; run bench scale with the encoder itself (a checkpoint or a plugin)")
    corpus = inputs.corpus
    base = inputs.db_segments[["track_id", "segment"]].assign(source=CORPUS_SOURCE, key=inputs.db_segments["track_id"],
                                                            real=True)
    need = max(0, max(config.counted_sizes, default=0) - len(base))
    distractors = assemble_distractors(corpus, need, config.run.seed, config.distractors.real,
                                       config.distractors.fill, progress=progress, all_real="max" in config.sizes)
    n_dist = distractors.segments if "max" in config.sizes else need
    dtable = distractor_segments(distractors, corpus.protocol, n_dist)
    table = pd.concat([base, dtable[["source", "track_id", "key", "segment", "real"]]], ignore_index=True)
    sources = {CORPUS_SOURCE: corpus, **distractors.sources}
    identity = {"encoder": inputs.encoder.sha256, "base": db_identity(corpus, inputs.db_segments),
                "distractors": {name: stable_hash(c.identity(), n=32) for name, c in distractors.sources.items()},
                "rows": stable_hash(dtable[["source", "track_id", "segment"]].to_csv(index=False), n=32)}
    key = stable_hash(identity, n=32)
    stream = executor.track_stream(inputs.encoder, sources, config.run.device) if executor is not None else None
    store = fill_store(cache_dir("embeddings", "store", key), key, table, sources, inputs.encoder, progress,
                       config.workers, head=inputs.db, stream=stream,
                       chunk_rows=executor.store_chunk_rows if executor is not None else CHUNK_ROWS, identity=identity)
    return ScaleDatabase(table, store, distractors, len(base))


def sized_inputs(inputs: RunInputs, db: ScaleDatabase, n: int) -> RunInputs:
    """The run's inputs with the DB cut to its first ``n`` rows (a view of the store, no copy);
    the train pairs, when already embedded, are shared."""
    segments = db.table.iloc[:n][["key", "segment"]].rename(columns={"key": "track_id"}).reset_index(drop=True)
    sized = replace(inputs, db=np.asarray(db.store.rows[:n]), db_segments=segments)
    if "train" in inputs.__dict__:
        sized.__dict__["train"] = inputs.__dict__["train"]
    return sized


def fitted_model(real: ScaleDatabase, seed: int, progress: bool = True) -> tuple[FingerprintModel, str]:
    """The fingerprint model fitted on ``real``'s distractor rows (never a corpus row), its
    statistics against them (:func:`model_stats`, of the draw the run seed gives) in its ``info``;
    kept in ``cache_dir("fingerprint-models")`` by the store's key; with its key."""
    key = stable_hash({"store": real.store.state["key"], "seed": seed, "format": MODEL_FORMAT}, n=32)
    path = cache_dir("fingerprint-models") / f"{key}.npz"
    if path.is_file():
        model = load_fingerprint_model(path)
        if "stats" in model.info:
            return model, key
    else:
        part = real.table.iloc[real.n_base:]
        rows = np.asarray(real.store.rows[real.n_base:])
        if progress:
            print(f"fingerprint model: fitting on {len(rows):,} distractor rows", flush=True)
        model = fit_fingerprint_model(rows, part["key"].to_numpy(), part["source"].to_numpy(), DISTRACTOR_SOURCES,
                                      seed=seed)
    model = replace(model, info={**model.info, "stats": model_stats(real, model, seed + MODEL_SEED_OFFSET)})
    tmp = path.with_name(path.stem + ".tmp.npz")
    model.save(tmp)
    tmp.replace(path)
    return model, key


def model_stats(real: ScaleDatabase, model: FingerprintModel, seed: int, rows: int = STATS_ROWS) -> dict:
    """:func:`~bench.scale.fingerprint_stats.fingerprint_stats` of the first ``rows`` distractor rows
    of ``real`` and of as many rows drawn from ``model``: {statistic: {"real": .., "model": ..}}."""
    stop = min(len(real), real.n_base + rows)
    real_stats = fingerprint_stats(np.asarray(real.store.rows[real.n_base:stop]),
                                   real.table["key"].to_numpy()[real.n_base:stop], seed=seed)
    drawn, table = model.sample(stop - real.n_base, seed)
    model_stats_ = fingerprint_stats(drawn, table["track"].to_numpy(), seed=seed)
    return {k: {"real": round(v, 4), "model": round(model_stats_[k], 4)} for k, v in real_stats.items()}


def _model_stream(model: FingerprintModel, seed: int, lengths: np.ndarray):
    def stream(jobs: list) -> Iterator[np.ndarray]:
        for _, track_id, seg_no in jobs:
            number = int(track_id)
            yield model.track(seed, number, int(lengths[number]))[seg_no]

    return stream


def build_model_db(config: ScaleConfig, inputs: RunInputs, progress: bool = True,
                   executor: Executor | None = None) -> ScaleDatabase:
    """A DB filled by the fingerprint model: the run's own rows, the distractors the config gives
    without the model up to ``distractors.real_until`` rows (none without it), then model tracks up
    to the largest size. The model is fitted on the distractor rows (real music, else the synthetic
    fill; never a corpus row) of the DB the config gives without the model, cut at ``real_until``
    rows, else at the largest size, embedded as :func:`build_scale_db` embeds it; the model's rows
    are drawn, not embedded."""
    sizes = config.counted_sizes
    if not sizes or "max" in config.sizes:
        raise ValueError("sizes: a DB filled by the fingerprint model needs segment counts ('max' has no bound)")
    fit_n = config.distractors.real_until or max(sizes)
    real_config = replace(config, sizes=(fit_n,),
                          distractors=Distractors(real=config.distractors.real, fill=config.distractors.fill))
    real = build_scale_db(real_config, inputs, progress, executor)
    model, model_key = fitted_model(real, config.run.seed, progress)
    head_n = min(fit_n, len(real), max(sizes)) if config.distractors.real_until else real.n_base
    seed = config.run.seed + MODEL_SEED_OFFSET
    lengths = model.draw_lengths(max(sizes) - head_n, seed)
    tracks, segments = track_rows(lengths)
    ids = np.char.zfill(tracks.astype(str), 7)
    drawn = pd.DataFrame({"source": MODEL_SOURCE, "track_id": ids, "key": np.char.add(f"{MODEL_SOURCE}:", ids),
                          "segment": segments, "real": False})
    table = pd.concat([real.table.iloc[:head_n], drawn], ignore_index=True)
    identity = {"encoder": inputs.encoder.sha256, "head": real.store.state["key"], "head_rows": int(head_n),
                "model": model_key, "model_rows": len(drawn), "seed": seed}
    key = stable_hash(identity, n=32)
    # fill_store checks that every row's source is named; the model's rows come from the stream, not a corpus
    sources = {CORPUS_SOURCE: inputs.corpus, **real.distractors.sources, MODEL_SOURCE: inputs.corpus}
    store = fill_store(cache_dir("embeddings", "store", key), key, table, sources, inputs.encoder, progress,
                       head=np.asarray(real.store.rows[:head_n]), stream=_model_stream(model, seed, lengths),
                       identity=identity)
    info = {**model.info, "key": model_key, "seed": seed,
            "source": MODEL_SOURCE,
            "fitted_on_store": real.store.state["key"], "fitted_on_rows": fit_n,
            "model_rows": len(drawn), "model_tracks": len(lengths)}
    return ScaleDatabase(table, store, real.distractors, real.n_base, info)
