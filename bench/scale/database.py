"""A scaling run's DB: the run's own DB rows (query tracks and the corpus's other DB tracks) then
the distractors, all embedded in one on-disk store, so that the DB of size N is its first N rows."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.run.executor import Executor
from bench.run.inputs import RunInputs
from datasets.cache import cache_dir, stable_hash
from datasets.distractors import DistractorSet, assemble_distractors, distractor_segments
from encoders.embed import db_identity
from encoders.interface import EncoderError
from encoders.precomputed import PrecomputedEncoder
from encoders.store import CHUNK_ROWS, EmbeddingStore, fill_store

from .config import ScaleConfig

CORPUS_SOURCE = "corpus"


@dataclass
class ScaleDatabase:
    """Rows in DB order: ``table`` (source, track_id, key, segment, real) and their embeddings
    (``store.rows``, memory-mapped); the first ``n_base`` rows are the run's own DB."""

    table: pd.DataFrame
    store: EmbeddingStore
    distractors: DistractorSet
    n_base: int

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
    processes."""
    if isinstance(inputs.encoder, PrecomputedEncoder):
        raise EncoderError(f"{inputs.encoder.label}: a scaling run embeds distractors, which precomputed vectors "
                           f"do not hold; run bench scale with the encoder itself (a checkpoint or a plugin)")
    corpus = inputs.corpus
    base = inputs.db_segments[["track_id", "segment"]].assign(source=CORPUS_SOURCE, key=inputs.db_segments["track_id"],
                                                            real=True)
    need = max(0, max(config.counted_sizes, default=0) - len(base))
    distractors = assemble_distractors(corpus, need, config.run.seed, config.distractors.real,
                                       config.distractors.fill, progress=progress)
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
