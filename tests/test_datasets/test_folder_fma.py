"""The folder and FMA corpus loaders on files the tests write."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets.corpora.fma import FMACorpus
from datasets.corpora.folder import FolderCorpus
from datasets.corpora.registry import open_corpus
from datasets.protocol import Protocol
from tests.conftest import write_tracks


def test_folder_reads_wav_flac_ogg_downmixed_and_resampled(tmp_path: Path) -> None:
    write_tracks(tmp_path, [("a/one.wav", 4.0, 16000, "WAV"), ("b/two.flac", 3.0, 44100, "FLAC"),
                            ("three.ogg", 5.0, 22050, "OGG"), ("four.wav", 2.0, 8000, "stereo-wav")])
    corpus = FolderCorpus(tmp_path, Protocol())
    assert [t.track_id for t in corpus.tracks()] == ["a/one.wav", "b/two.flac", "four.wav", "three.ogg"]
    for track, seconds in zip(corpus.tracks(), (4.0, 3.0, 2.0, 5.0)):
        audio = corpus.load(track.track_id)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(len(audio) - seconds * 8000) <= 2
        assert abs(track.duration_s - seconds) < 0.01
        assert np.max(np.abs(audio)) > 0.1
    assert corpus.skipped == []


def test_folder_resampling_keeps_pitch(tmp_path: Path) -> None:
    import soundfile as sf

    sr = 44100
    t = np.arange(sr * 2) / sr
    sf.write(tmp_path / "a440.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    audio = FolderCorpus(tmp_path).load("a440.wav")
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * 8000 / len(audio)
    assert abs(peak_hz - 440) < 2


def test_folder_skips_corrupt_and_empty_files_with_a_warning(tmp_path: Path) -> None:
    write_tracks(tmp_path, [("good.wav", 2.0, 8000, "WAV")])
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + b"\x00garbage" * 50)
    (tmp_path / "empty.ogg").write_bytes(b"")
    with pytest.warns(UserWarning, match="corrupt.flac"):
        corpus = FolderCorpus(tmp_path)
    assert [t.track_id for t in corpus.tracks()] == ["good.wav"]
    assert sorted(Path(s.path).name for s in corpus.skipped) == ["corrupt.flac", "empty.ogg"]


def test_folder_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FolderCorpus(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no readable audio"):
        FolderCorpus(tmp_path)
    with pytest.raises(ValueError, match="--corpus-path"):
        open_corpus("folder")
    with pytest.raises(ValueError, match="allowed: synth, folder, fma, debian-music"):
        open_corpus("spotify")


def test_splits_are_stable_and_disjoint(tmp_path: Path) -> None:
    write_tracks(tmp_path, [(f"t{i:02d}.wav", 1.0, 8000, "WAV") for i in range(30)])
    a, b = FolderCorpus(tmp_path), FolderCorpus(tmp_path)
    splits = {s: {t.track_id for t in a.tracks(s)} for s in ("train", "val", "test")}
    assert splits["train"].isdisjoint(splits["test"]) and splits["val"].isdisjoint(splits["test"])
    assert set().union(*splits.values()) == {t.track_id for t in a.tracks()}
    assert all(a.split(t.track_id) == b.split(t.track_id) for t in a.tracks())
    assert len(splits["train"]) > len(splits["test"]) > 0


TRACKS_CSV = """,album,set,set,track,track,artist
,title,split,subset,genre_top,title,name
track_id,,,,,,
2,AWOL,training,small,Hip-Hop,Food,AWOL
5,AWOL,training,small,Hip-Hop,This World,AWOL
140,Pike,validation,medium,Folk,Queen,Alec
141,Pike,test,large,Folk,Ohio,Alec
"""



def _fma_rel(size: str, track_id: int) -> str:
    name = f"{track_id:06d}"
    return f"fma_{size}/{name[:3]}/{name}.mp3"


def test_fma_layout_reads_subset_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_text(TRACKS_CSV)
    write_tracks(tmp_path, [(_fma_rel("medium", i), 3.0, 22050, "MP3") for i in (2, 5, 140, 141)])
    corpus = FMACorpus(tmp_path, "medium")
    ids = [t.track_id for t in corpus.tracks()]
    assert ids == ["000002", "000005", "000140"]  # 141 is in 'large' only
    assert corpus.track("000140").meta["genre"] == "Folk"
    assert abs(len(corpus.load("000005")) - 3 * 8000) < 2000  # mp3 decoders pad a few frames


def test_fma_missing_path_or_layout_explains_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="expected layout"):
        FMACorpus(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="fma_small is missing"):
        FMACorpus(tmp_path)
    (tmp_path / "fma_small").mkdir()
    with pytest.raises(FileNotFoundError, match="no tracks.csv"):
        FMACorpus(tmp_path)
    with pytest.raises(ValueError, match="size 'huge'"):
        FMACorpus(tmp_path, "huge")
