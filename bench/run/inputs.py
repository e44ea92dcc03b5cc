"""Everything a run searches with, prepared once: corpus, query set, encoder, embeddings, train pairs."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from bench.measure.recall import RECALL_KS, cached_exact_scores
from datasets.corpora.corpus import Corpus
from datasets.corpora.registry import open_corpus
from datasets.distractors import FILL_SOURCE, assemble_distractors, distractor_segments
from datasets.noise.bank import NoiseBank
from datasets.noise.registry import open_noise_bank
from datasets.overlap import check_no_leak
from datasets.queries.queryset import QuerySet, build_queryset, default_queryset_dir
from datasets.queries.split_segments import split_segments
from datasets.rooms import RoomBank, open_room_bank
from encoders.embed import (
    cut_segments,
    embed_db,
    embed_queries,
    embed_segments,
    query_matrix,
    query_segment_index,
)
from encoders.interface import Encoder, EncoderError
from encoders.pairs import embed_train_pairs
from encoders.precomputed import PrecomputedEncoder, db_ids, query_ids
from encoders.registry import open_encoder
from encoders.spectral import SpectralConfig, SpectralImage, spectral_db, spectral_queries
from methods.base import INPUT_KINDS, AudioDB, TrainData, audio_query_rows

from .config import RunConfig
from .environment import set_threads
from .executor import Executor

ENCODER_TIMING_SEGMENTS = 64


@dataclass
class RunInputs:
    """The data of a run. DB rows are segments of the non-training tracks (``config.db_splits``)."""

    config: RunConfig
    corpus: Corpus
    noise: NoiseBank
    rooms: RoomBank
    queryset: QuerySet
    encoder: Encoder
    db_segments: pd.DataFrame
    db: np.ndarray
    query_emb: np.ndarray
    query_index: pd.DataFrame
    manifest: pd.DataFrame
    progress: bool = True
    stage_seconds: dict[str, float] = field(default_factory=dict)
    content_overlap: dict[str, int] = field(default_factory=dict)  # cross-split pairs by kind (all 0)
    unreadable_tracks: list[dict] = field(default_factory=list)     # DB/query tracks left out, with why

    @cached_property
    def train(self) -> TrainData:
        """Embedded anchor/positive pairs from the train split (computed on first use, cached): the
        fitting pairs, and the held-out pairs from train tracks none of them comes from."""
        t0 = time.perf_counter()
        set_threads(0)
        wanted = ((self.config.train_pairs, "fit"), (self.config.held_out_pairs, "held-out"))
        if isinstance(self.encoder, PrecomputedEncoder):
            pairs = [self.encoder.pairs(part, n) for n, part in wanted]
        else:
            pairs = [embed_train_pairs(self.encoder, self.corpus, self.noise, self.rooms, n, self.config.seed,
                                       self.progress, part=part) for n, part in wanted]
        self.stage_seconds["train_pairs"] = time.perf_counter() - t0
        return TrainData(*pairs[0], *pairs[1])

    @cached_property
    def exact_scores(self) -> np.ndarray:
        """[query segments, max(RECALL_KS)] exact top scores of every query segment over the DB
        (``bench.measure.recall``), on all cores; computed on first use, kept on disk."""
        t0 = time.perf_counter()
        scores = cached_exact_scores(self.db, self.query_emb, max(RECALL_KS), len(os.sched_getaffinity(0)))
        self.stage_seconds["exact_neighbours"] = time.perf_counter() - t0
        return scores

    @cached_property
    def spectrogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Spectral images (``encoders.spectral``) of the DB rows and of the query segments, rows
        aligned with ``db_segments`` and ``query_index`` (computed on first use, cached on disk)."""
        t0 = time.perf_counter()
        set_threads(0)
        protocol = self.corpus.protocol
        db, _ = spectral_db(self.corpus, self.db_segments, SpectralConfig(), self.progress)
        queries, index, _ = spectral_queries(self.queryset, protocol, SpectralConfig(), self.progress)
        if not index[["query", "j"]].equals(self.query_index[["query", "j"]]):
            raise RuntimeError("spectral query rows do not line up with the query embeddings' rows")
        self.stage_seconds["spectrogram"] = time.perf_counter() - t0
        return db, queries

    @cached_property
    def audio(self) -> tuple[AudioDB, np.ndarray]:
        """The raw audio an "audio" method (an end-to-end system) is given: the DB tracks'
        waveforms with their segments' DB rows, and one row per query segment, ``[query, j,
        samples...]`` (``methods.base.AudioDB``), rows aligned with ``query_index``."""
        t0 = time.perf_counter()
        protocol = self.corpus.protocol
        tracks, segment_rows = [], []
        segment = self.db_segments["segment"].to_numpy()
        for track_id, rows in self.db_segments.groupby("track_id", sort=False).indices.items():
            segments = segment[rows]
            order = np.argsort(segments, kind="stable")
            if not np.array_equal(segments[order], np.arange(len(rows))):
                raise RuntimeError(f"DB track {track_id!r}: its segments are not 0..{len(rows) - 1}")
            tracks.append(self.corpus.load(track_id))
            segment_rows.append(np.asarray(rows, dtype=np.int64)[order])
        db = AudioDB(protocol.sample_rate, protocol.segment_s, protocol.hop_s, tracks, segment_rows)
        segments, index, _ = query_matrix(lambda segs: segs, self.queryset, protocol, "", ("audio", "queries"),
                                          self.progress, cache=False, producer="the query audio")
        if not index[["query", "j"]].equals(self.query_index[["query", "j"]]):
            raise RuntimeError("query audio rows do not line up with the query embeddings' rows")
        queries = audio_query_rows(segments, index["query"].to_numpy(), index["j"].to_numpy())
        self.stage_seconds["audio"] = time.perf_counter() - t0
        return db, queries

    def matrices(self, kind: str) -> tuple[np.ndarray | AudioDB, np.ndarray]:
        """(DB, query matrix) of a method input kind (``Method.input_kind``): the embeddings, the
        spectral images, or the raw audio (an ``AudioDB`` and raw query segments); row i of the
        query matrix is query segment i of the run, DB row i is DB segment i."""
        if kind == "embedding":
            return self.db, self.query_emb
        if kind == "spectrogram":
            return self.spectrogram
        if kind == "audio":
            return self.audio
        raise ValueError(f"input kind {kind!r} is not allowed; choose one of: {', '.join(INPUT_KINDS)}")

    @cached_property
    def encoder_ms(self) -> float:
        """The encoder's median time to embed one query segment alone, at the run's timing threads
        (measured once, on first use); NaN for precomputed vectors, whose encoder is not here."""
        if isinstance(self.encoder, PrecomputedEncoder):
            return float("nan")
        return encoder_ms_per_segment(self.encoder, self.query_segments_sample(), self.config.timing.threads)

    @cached_property
    def spectral_ms(self) -> float:
        """The spectral front end's median time for one query segment alone (measured once)."""
        frontend = SpectralImage(self.corpus.protocol, SpectralConfig())
        segments = self.query_segments_sample()
        set_threads(self.config.timing.threads)
        frontend(segments[:2])
        times = []
        for seg in segments:
            t0 = time.perf_counter()
            frontend(seg[None])
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    def frontend_ms_per_segment(self, kind: str) -> float:
        """What turning one query segment into a method's input costs, added to its search time in
        the end-to-end latency: the encoder (embeddings), the spectral front end, or nothing for an
        "audio" method, whose own analysis of the query is inside its search."""
        if kind == "embedding":
            return self.encoder_ms
        if kind == "spectrogram":
            return self.spectral_ms
        if kind == "audio":
            return 0.0
        raise ValueError(f"input kind {kind!r} is not allowed; choose one of: {', '.join(INPUT_KINDS)}")

    def input_facts(self, kind: str) -> dict:
        """What a method of this input kind was given, for its results: the kind, its front end's
        time per query segment, and for spectral images their config."""
        facts = {"kind": kind, "frontend_ms_per_segment": self.frontend_ms_per_segment(kind)}
        if kind == "spectrogram":
            facts.update({"features": SpectralConfig().to_dict(), "dim": SpectralConfig().dim})
        if kind == "audio":
            facts.update({"sample_rate": self.corpus.protocol.sample_rate, "analysis": "the method's own, in search"})
        return facts

    @cached_property
    def db_track_codes(self) -> tuple[np.ndarray, pd.Index]:
        """Integer code of each DB row's track, and the track ids in code order."""
        codes, tracks = pd.factorize(self.db_segments["track_id"])
        return codes.astype(np.int64), pd.Index(tracks)

    def query_segments_sample(self, n: int = ENCODER_TIMING_SEGMENTS) -> np.ndarray:
        """Raw waveform segments of the first queries (to time the encoder on real query audio)."""
        segs, total = [], 0
        for query_id in self.manifest["query_id"]:
            segs.append(cut_segments(self.queryset.load_query(query_id), self.corpus.protocol))
            total += len(segs[-1])
            if total >= n:
                break
        return np.concatenate(segs)[:n]

    def split_overlap(self) -> dict[str, int]:
        """Tracks that are both in the DB/query set and in the train split (must be 0)."""
        train = {t.track_id for t in self.corpus.tracks("train")}
        return {"db_tracks_in_train": len(set(self.db_segments["track_id"]) & train),
                "query_tracks_in_train": len(set(self.manifest["track_id"]) & train)}


def _db_table(corpus: Corpus, queryset: QuerySet, splits: tuple[str, ...],
              progress: bool) -> tuple[pd.DataFrame, list[dict]]:
    """The DB segment table (the query set's test segments, then the other DB splits', less the
    tracks an open-set query set holds out), and the tracks left out because their audio does not
    decode (the query set's among them)."""
    test = queryset.segments().assign(split="test")
    unreadable = list(queryset.info.get("counts", {}).get("tracks_unreadable", {}).get("items", []))
    held_out = queryset.info.get("open_set", {}).get("held_out_tracks", {})  # open set: songs in no DB
    others = []
    for split in splits:
        if split != "test" and corpus.tracks(split):
            part = split_segments(corpus, split, progress)
            kept = part.segments[~part.segments["track_id"].isin(held_out.get(split, []))]
            others.append(kept.assign(split=split))
            unreadable += part.unreadable
    return pd.concat([test, *others], ignore_index=True), unreadable


def encoder_ms_per_segment(encoder: Encoder, segments: np.ndarray, threads: int) -> float:
    """Median time to embed one segment alone at ``threads`` threads (reported beside search latency)."""
    set_threads(threads)
    embed_segments(encoder, segments[:2], batch_size=1)
    times = []
    for seg in segments[:ENCODER_TIMING_SEGMENTS]:
        t0 = time.perf_counter()
        embed_segments(encoder, seg[None], batch_size=1)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


@dataclass
class RunData:
    """A run's data before any encoder runs: corpus, noise, rooms, query set and the DB segment table."""

    corpus: Corpus
    noise: NoiseBank
    rooms: RoomBank
    queryset: QuerySet
    db_segments: pd.DataFrame
    stage_seconds: dict[str, float]
    content_overlap: dict[str, int]
    unreadable_tracks: list[dict]


def open_run_data(config: RunConfig, progress: bool = True) -> RunData:
    """Open the corpus, noise and rooms, check their splits share no content, build or reuse the
    query set and draw up the DB segment table (what ``bench export-audio`` writes out)."""
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    set_threads(0)
    corpus = open_corpus(config.corpus, config.protocol(), path=config.corpus_path, fma_size=config.fma_size,
                         synth_tracks=config.synth_tracks, synth_seed=config.synth_seed, progress=progress)
    noise = open_noise_bank(config.noise, corpus.protocol, progress)
    rooms = open_room_bank(config.rooms, corpus.protocol, progress)
    stages["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    overlap = check_no_leak(corpus, noise, rooms)  # before any query is rendered or segment embedded
    stages["overlap_check"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    queryset = build_queryset(corpus, noise, rooms, config.queries,
                              default_queryset_dir(corpus, config.queries, noise, rooms), progress=progress)
    stages["queries"] = time.perf_counter() - t0
    db_segments, unreadable = _db_table(corpus, queryset, config.db_splits, progress)
    return RunData(corpus, noise, rooms, queryset, db_segments, stages, overlap, unreadable)


def with_distractors(config: RunConfig, corpus: Corpus, encoder: Encoder, db_segments: pd.DataFrame,
                     db: np.ndarray, progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """The DB with ``config.distractors`` synthetic distractor segments appended (the synth fill of
    :func:`datasets.distractors.assemble_distractors`, under its own seed, tracks sharing audio with
    the corpus left out): their rows' ``track_id`` is ``"synth-distractors:<id>"``, so none can be a
    query's answer, and their ``split`` is ``"distractor"``."""
    if isinstance(encoder, PrecomputedEncoder):
        raise EncoderError(f"{encoder.label}: distractors={config.distractors} needs the encoder itself to embed "
                           f"them; precomputed vectors hold only the run's own DB")
    found = assemble_distractors(corpus, config.distractors, config.seed, real=False, fill=True, progress=progress)
    table = distractor_segments(found, corpus.protocol, config.distractors)
    source = found.sources[FILL_SOURCE]
    emb, _ = embed_db(encoder, source, table[["track_id", "segment"]].reset_index(drop=True), progress)
    rows = pd.DataFrame({"track_id": table["key"].to_numpy(), "segment": table["segment"].to_numpy(),
                         "split": "distractor"})
    for column in db_segments.columns.difference(rows.columns):
        rows[column] = table[column].to_numpy() if column in table else pd.NA
    rows = rows[list(db_segments.columns)]
    return pd.concat([db_segments, rows], ignore_index=True), np.concatenate([db, emb]).astype(db.dtype, copy=False)


def expected_query_index(data: RunData) -> pd.DataFrame:
    """One row per query segment (``encoders.embed.query_segment_index``) of the run's query set."""
    return query_segment_index(data.queryset.manifest(), data.corpus.protocol)


def prepare_inputs(config: RunConfig, progress: bool = True, executor: Executor | None = None) -> RunInputs:
    """Open the data (:func:`open_run_data`), open the encoder and embed DB and queries (the DB's
    tracks on the ``executor``'s workers when it has any, e.g. Ray's), or read them from
    precomputed vectors."""
    data = open_run_data(config, progress)
    corpus, stages = data.corpus, data.stage_seconds
    t0 = time.perf_counter()
    encoder = open_encoder(config.encoder, corpus.protocol, config.device, config.encoder_params)
    if isinstance(encoder, PrecomputedEncoder):
        query_index = expected_query_index(data)
        db = encoder.rows("db", db_ids(data.db_segments["track_id"], data.db_segments["segment"]))
        query_emb = encoder.rows("queries", query_ids(query_index["query_id"], query_index["j"]))
    else:
        stream = executor.track_stream(encoder, {"corpus": corpus}, config.device) if executor is not None else None
        db, _ = embed_db(encoder, corpus, data.db_segments, progress, stream=stream)
        query_emb, query_index, _ = embed_queries(encoder, data.queryset, corpus.protocol, progress)
    stages["embed"] = time.perf_counter() - t0
    db_segments = data.db_segments
    if config.distractors:
        t0 = time.perf_counter()
        db_segments, db = with_distractors(config, corpus, encoder, db_segments, db, progress)
        stages["distractors"] = time.perf_counter() - t0
    return RunInputs(config, corpus, data.noise, data.rooms, data.queryset, encoder, db_segments, db, query_emb,
                     query_index, data.queryset.manifest(), progress, stages, data.content_overlap,
                     data.unreadable_tracks)
