"""Cross-split content overlap of tracks, noise clips and rooms: 0 when clean, > 0 when a split leaks."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from datasets.corpora.corpus import Corpus, Track
from datasets.corpora.folder import FolderCorpus
from datasets.dedup import DEFAULT_PARAMS, fingerprint
from datasets.noise.folder import FolderNoiseBank
from datasets.noise.synth import SynthNoiseBank
from datasets.overlap import (
    content_overlap,
    noise_fingerprints,
    noise_overlap,
    noise_overlap_pairs,
    room_overlap,
    room_overlap_pairs,
    track_fingerprints,
    track_overlap,
    track_overlap_pairs,
)
from datasets.protocol import Protocol
from datasets.rooms import FolderRoomBank
from datasets.splits import DEFAULT_FRACTIONS, split_of
from tests.helpers import ambience, decaying_noise, music_like

SR = 8000


def names_in(split_wanted: str, n: int, prefix: str) -> list[str]:
    """``n`` track file names whose id lands in ``split_wanted`` (or outside train for 'other')."""
    out, k = [], 0
    while len(out) < n:
        name = f"{prefix}{k}.wav"
        split = split_of(name, DEFAULT_FRACTIONS, salt="track")
        if (split == "train") == (split_wanted == "train"):
            out.append(name)
        k += 1
    return out


def rir(rt60: float, seed: int) -> np.ndarray:
    h = 0.2 * decaying_noise(rt60, SR, 1.2 * rt60, seed=seed)
    h[0] = 1.0
    return h


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A clean corpus, noise folder and room folder, and the same with a renamed copy across splits."""
    root = tmp_path_factory.mktemp("data")
    train, other = names_in("train", 3, "t"), names_in("other", 3, "o")
    tracks = {name: music_like(12, seed=i) for i, name in enumerate(train + other)}
    for folder in ("clean_corpus", "leaky_corpus"):
        (root / folder).mkdir()
        for name, audio in tracks.items():
            sf.write(root / folder / name, audio, SR)
    # a test track re-encoded under a train name: its content is in both splits
    extra = names_in("train", 4, "t")[3]
    sf.write(root / "leaky_corpus" / extra, 0.5 * tracks[other[0]], SR, format="FLAC")
    for folder in ("clean_noise", "leaky_noise"):
        for j, kind in enumerate(("rain", "wind")):
            (root / folder / kind).mkdir(parents=True)
            for k in range(2):
                sf.write(root / folder / kind / f"{k}.wav", ambience(4, seed=10 * j + k), SR)
    # two clips of a kind are split one train, one test: make them the same recording
    sf.write(root / "leaky_noise" / "rain" / "1.wav", 0.8 * sf.read(root / "leaky_noise" / "rain" / "0.wav")[0], SR)
    for folder in ("clean_rooms", "leaky_rooms"):
        (root / folder).mkdir()
        for k, rt60 in enumerate((0.4, 0.4, 0.8, 0.8)):  # two RT60 levels: one train, one test RIR each
            sf.write(root / folder / f"r{k}.wav", rir(rt60, seed=k), SR, subtype="FLOAT")
    # r1 becomes r0 scaled, with a little noise: the same response, not the same bytes
    copy = rir(0.4, seed=0)
    copy[1:] += 1e-3 * np.random.default_rng(9).standard_normal(copy.size - 1)
    sf.write(root / "leaky_rooms" / "r1.wav", 0.7 * copy, SR, subtype="FLOAT")
    return root


def test_track_overlap(data):
    clean = FolderCorpus(data / "clean_corpus")
    assert track_overlap(clean, min_overlap_s=5.0) == 0
    leaky = FolderCorpus(data / "leaky_corpus")
    pairs = track_overlap_pairs(leaky, min_overlap_s=5.0)
    assert len(pairs) == 1 and pairs[0].overlap_s > 10
    assert {leaky.split(pairs[0].a), leaky.split(pairs[0].b)} - {"train"}
    assert track_overlap(leaky, min_overlap_s=5.0) == 1
    assert track_overlap(leaky) == 0  # 12 s tracks share less than the default 20 s


class LoadedCorpus(Corpus):
    """Tracks without files: audio only through load()."""

    name = "loaded"

    def __init__(self) -> None:
        super().__init__(Protocol())
        self.loads = 0
        for k in range(3):
            self._tracks[f"song{k}"] = Track(f"song{k}", 6.0)

    def load(self, track_id: str) -> np.ndarray:
        self.loads += 1
        return music_like(6, seed=int(track_id[-1]) % 2)  # song0 and song2 are the same


def test_track_fingerprints_from_load():
    corpus = LoadedCorpus()
    first = track_fingerprints(corpus)
    assert corpus.loads == 3
    again = track_fingerprints(corpus)  # no file, not synthetic: its identity does not fix its audio
    assert corpus.loads == 6 and set(again) == set(first)
    assert np.array_equal(again["song1"].bits, first["song1"].bits)
    splits = {i: corpus.split(i) for i in first}
    expected = int(splits["song0"] != splits["song2"] and "train" in (splits["song0"], splits["song2"]))
    assert track_overlap(corpus, min_overlap_s=3.0) == expected


def test_track_fingerprints_from_the_corpus_cache(tmp_path):
    """A track naming its sha256, in a corpus with a fingerprint cache, is not decoded."""
    fp = fingerprint(music_like(6, seed=3), SR)
    cache = tmp_path / "fingerprints" / DEFAULT_PARAMS.key()
    cache.mkdir(parents=True)
    fp.save(cache / f"{'ab' * 32}.npz")

    class Cached(Corpus):
        name = "cached"

        def __init__(self) -> None:
            super().__init__(Protocol())
            self.root = tmp_path
            self._tracks["x"] = Track("x", 6.0, tmp_path / "no-such-file.ogg", {"sha256": "ab" * 32})

    got = track_fingerprints(Cached())
    assert np.array_equal(got["x"].bits, fp.bits)


def test_noise_fingerprints_cached(monkeypatch):
    bank = SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=3.0, kinds=("pink", "babble"))
    first = noise_fingerprints(bank)
    assert set(first) == {c.noise_id for c in bank.clips()}
    monkeypatch.setattr(bank, "load", lambda noise_id: pytest.fail("synthetic clip generated twice"))
    again = noise_fingerprints(bank)
    assert all(np.array_equal(again[i].bits, first[i].bits) for i in first)
    assert noise_overlap(bank) == 0


def test_noise_overlap(data):
    assert noise_overlap(FolderNoiseBank(data / "clean_noise")) == 0
    leaky = FolderNoiseBank(data / "leaky_noise", min_overlap_s=1e9)  # content grouping off: the copy leaks
    pairs = noise_overlap_pairs(leaky)
    assert [(p.a, p.b) for p in pairs] == [("rain/0", "rain/1")] and pairs[0].match_fraction > 0.9
    assert noise_overlap(leaky) == 1


def test_room_overlap(data):
    clean = FolderRoomBank(data / "clean_rooms")
    assert {r.split for r in clean.rooms()} == {"train", "test"}
    assert room_overlap(clean) == 0
    assert max(m.ncc for m in room_overlap_pairs(clean, ncc_threshold=0.0)) < 0.5
    leaky = FolderRoomBank(data / "leaky_rooms")
    assert leaky.room("r0").split != leaky.room("r1").split
    pairs = room_overlap_pairs(leaky)
    assert len(pairs) == 1 and {pairs[0].a, pairs[0].b} == {"r0", "r1"}
    assert not pairs[0].identical and pairs[0].ncc > 0.99
    assert room_overlap(leaky) == 1


def test_room_overlap_identical_bytes(tmp_path):
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", rir(0.4, seed=1), SR, subtype="FLOAT")
    bank = FolderRoomBank(tmp_path)
    pairs = room_overlap_pairs(bank)
    assert len(pairs) == 1 and pairs[0].identical and pairs[0].ncc == 1.0


def test_folder_noise_bank_keeps_recordings_that_share_audio_in_one_split(data):
    ungrouped = FolderNoiseBank(data / "leaky_noise", min_overlap_s=1e9)
    assert ungrouped.clip("rain/0").split != ungrouped.clip("rain/1").split  # what the grouping must prevent
    bank = FolderNoiseBank(data / "leaky_noise")
    assert bank.clip("rain/0").split == bank.clip("rain/1").split
    assert bank.groups["rain/0"] == bank.groups["rain/1"]
    assert bank.identity()["content_groups"] == [["rain/0", "rain/1"]]
    assert noise_overlap(bank) == 0
    assert FolderNoiseBank(data / "clean_noise").identity()["content_groups"] == []




def test_content_overlap(data):
    clean = content_overlap(FolderCorpus(data / "clean_corpus"), FolderNoiseBank(data / "clean_noise"),
                            FolderRoomBank(data / "clean_rooms"))
    assert clean == {"tracks": 0, "noise": 0, "rooms": 0}
    leaky = content_overlap(FolderCorpus(data / "leaky_corpus"),
                            FolderNoiseBank(data / "leaky_noise", min_overlap_s=1e9),
                            FolderRoomBank(data / "leaky_rooms"))
    assert leaky == {"tracks": 0, "noise": 1, "rooms": 1}  # tracks: 12 s < the 20 s default
