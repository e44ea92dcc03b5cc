"""Embedded anchor/positive pairs from the train split: what learned search methods fit on."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from datasets.cache import atomic_save_npy, cache_dir, stable_hash
from datasets.corpora.corpus import Corpus
from datasets.noise.bank import NoiseBank
from datasets.rooms import RoomBank

from .checkpoint import Encoder
from .embed import embed_segments
from .train import PairSampler, TrainConfig


def embed_train_pairs(encoder: Encoder, corpus: Corpus, noise: NoiseBank, rooms: RoomBank, n_pairs: int,
                      seed: int = 0, progress: bool = True, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` (clean anchor, degraded positive) embeddings drawn like training pairs; cached."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs={n_pairs}: allowed >= 1")
    key = stable_hash({"encoder": encoder.sha256, "corpus": stable_hash(corpus.identity(), n=32),
                       "noise": stable_hash(noise.identity(), n=32), "rooms": stable_hash(rooms.identity(), n=32),
                       "n": n_pairs, "seed": seed}, n=32)
    root = cache_dir("embeddings", "pairs")
    a_path, p_path = root / f"{key}-anchors.npy", root / f"{key}-positives.npy"
    if a_path.exists() and p_path.exists():
        return np.load(a_path), np.load(p_path)
    sampler = PairSampler(corpus, noise, rooms, TrainConfig(seed=seed), progress=progress)
    rng = np.random.default_rng(seed)
    anchors, positives = [], []
    for start in tqdm(range(0, n_pairs, chunk), desc="embed train pairs", disable=not progress):
        a, p = sampler.sample(rng, min(chunk, n_pairs - start))
        anchors.append(embed_segments(encoder, a))
        positives.append(embed_segments(encoder, p))
    anchors_arr, positives_arr = np.concatenate(anchors), np.concatenate(positives)
    atomic_save_npy(a_path, anchors_arr)
    atomic_save_npy(p_path, positives_arr)
    return anchors_arr, positives_arr
