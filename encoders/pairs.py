"""Embedded anchor/positive pairs from the train split: what learned search methods fit on.

The pairs are drawn like the encoder's own training pairs, with the degradation recipe its
checkpoint records (``pair_recipe``): a clean segment and the same segment shifted, in noise,
in a room, band-limited or equalised. The train split's tracks are divided by a stable hash of
their ids (``held_out_tracks``): most give the fitting pairs, a tenth give held-out pairs for a
method's early stopping, so its stopping rule never sees a track it fits on.

Pairs are embedded and cached in shards of ``SHARD`` pairs (fewer when fewer are asked for),
each drawn from its own seeded generator: an interrupted embedding resumes at the first missing
shard and gives the same pairs.
"""
from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Iterator

import numpy as np

from datasets.cache import atomic_save_npy, cache_dir, stable_hash
from datasets.corpora.corpus import Corpus
from datasets.noise.bank import NoiseBank
from datasets.progress import tqdm
from datasets.rooms import RoomBank

from .embed import embed_segments
from .interface import Encoder
from .train import PairSampler, TrainConfig

HELD_OUT_SHARE = 0.1  # of the train split's tracks, kept for held-out pairs
SHARD = 8192          # pairs per cached shard
RECIPE_FIELDS = ("max_shift_s", "snr_db", "p_noise", "p_reverb", "p_eq")
PARTS = ("fit", "held-out")


def pair_recipe(encoder: Encoder, seed: int = 0) -> TrainConfig:
    """The degradation recipe of ``encoder``'s own training (its record's shift, SNR range, noise,
    reverb and equaliser probabilities), else the training defaults."""
    recorded = encoder.record.get("config", {}) if isinstance(encoder.record, dict) else {}
    known = {f.name for f in fields(TrainConfig)}
    recipe = {k: (tuple(v) if isinstance(v, list) else v) for k, v in recorded.items()
              if k in RECIPE_FIELDS and k in known}
    return TrainConfig(seed=seed, **recipe)


def held_out_tracks(track_ids: list[str], share: float = HELD_OUT_SHARE) -> set[str]:
    """The train tracks kept out of fitting: the ``share`` with the lowest sha256 of their id (at
    least one, and never all when there are two or more). Depends on the ids only, not on their order."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share={share}: allowed (0, 1)")
    ranked = sorted(track_ids, key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    n = max(1, int(round(share * len(ranked))))
    if len(ranked) > 1:
        n = min(n, len(ranked) - 1)
    return set(ranked[:n])


def part_tracks(corpus: Corpus, part: str) -> list[str]:
    """The train-split track ids of ``part``: ``"fit"`` or ``"held-out"``."""
    if part not in PARTS:
        raise ValueError(f"part={part!r}: allowed {', '.join(PARTS)}")
    ids = [t.track_id for t in corpus.tracks("train")]
    held = held_out_tracks(ids)
    return [t for t in ids if (t in held) == (part == "held-out")]


def shard_size(n_pairs: int) -> int:
    """Pairs per cached shard when ``n_pairs`` are asked for."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs={n_pairs}: allowed >= 1")
    return min(SHARD, n_pairs)


def shard_waveforms(sampler: PairSampler, seed: int, shard_no: int, shard: int,
                    chunk: int = 512) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (anchor, positive) waveform chunks of shard ``shard_no``, drawn from its own generator
    ``[seed, shard_no]``: the same pairs whoever draws them (the embedding here, ``bench export-audio``)."""
    rng = np.random.default_rng([seed, shard_no])
    for start in range(0, shard, chunk):
        yield sampler.sample(rng, min(chunk, shard - start))


def pair_sampler(encoder: Encoder, corpus: Corpus, noise: NoiseBank, rooms: RoomBank, part: str, seed: int,
                 progress: bool = True) -> PairSampler:
    """The sampler of the ``part`` train pairs (``"fit"`` or ``"held-out"``), with ``encoder``'s recipe."""
    return PairSampler(corpus, noise, rooms, pair_recipe(encoder, seed), progress=progress,
                       track_ids=part_tracks(corpus, part))


def embed_train_pairs(encoder: Encoder, corpus: Corpus, noise: NoiseBank, rooms: RoomBank, n_pairs: int,
                      seed: int = 0, progress: bool = True, part: str = "fit",
                      chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` (clean anchor, degraded positive) embeddings from the ``part`` tracks of the
    train split (``"fit"`` or ``"held-out"``), drawn with the encoder's recipe; cached by shard."""
    tracks = part_tracks(corpus, part)
    recipe = pair_recipe(encoder, seed)
    shard = shard_size(n_pairs)
    key = stable_hash({"encoder": encoder.sha256, "corpus": stable_hash(corpus.identity(), n=32),
                       "noise": stable_hash(noise.identity(), n=32), "rooms": stable_hash(rooms.identity(), n=32),
                       "tracks": tracks, "recipe": {k: getattr(recipe, k) for k in RECIPE_FIELDS},
                       "seed": seed, "shard": shard}, n=32)
    root = cache_dir("embeddings", "pairs", key)
    n_shards = -(-n_pairs // shard)
    paths = [(root / f"{i:05d}-anchors.npy", root / f"{i:05d}-positives.npy") for i in range(n_shards)]
    missing = [i for i, (a, p) in enumerate(paths) if not (a.exists() and p.exists())]
    if missing:
        sampler = PairSampler(corpus, noise, rooms, recipe, progress=progress, track_ids=tracks)
        bar = tqdm(total=len(missing) * shard, desc=f"embed train pairs ({part})", unit="pair",
                   disable=not progress)
        for i in missing:
            anchors, positives = [], []
            for a, p in shard_waveforms(sampler, seed, i, shard, chunk):
                anchors.append(embed_segments(encoder, a))
                positives.append(embed_segments(encoder, p))
                bar.update(len(a))
            atomic_save_npy(paths[i][0], np.concatenate(anchors))
            atomic_save_npy(paths[i][1], np.concatenate(positives))
        bar.close()
    anchors = np.concatenate([np.load(a) for a, _ in paths])[:n_pairs]
    positives = np.concatenate([np.load(p) for _, p in paths])[:n_pairs]
    return anchors, positives
