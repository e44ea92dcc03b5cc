"""audfprint end to end on audio files the test writes: clean excerpts are found at the right
offset, a silent or very short query is a miss (not a crash), and the package's import leaves the
process's logging as it was."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.run.result_checks import check_search_result
from datasets.audio_io import read_audio
from datasets.protocol import Protocol
from encoders.embed import cut_segments
from methods import get_method
from methods.audfprint import audfprint_modules, landmark_hashes
from methods.base import AudioDB, audio_query_rows
from tests.conftest import tone_track

PROTOCOL = Protocol()
SR = PROTOCOL.sample_rate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[AudioDB, list[np.ndarray]]:
    """Eight 60 s tone tracks written as FLAC at 44.1 kHz and read back at the protocol's rate,
    as an AudioDB, and the decoded tracks."""
    root = tmp_path_factory.mktemp("afp")
    tracks, rows, start = [], [], 0
    for t in range(8):
        path = root / f"track{t}.flac"
        sf.write(path, tone_track(300 + t, 60.0, 44_100), 44_100)
        audio = read_audio(path, SR)
        n = PROTOCOL.n_segments(len(audio))
        tracks.append(audio)
        rows.append(np.arange(start, start + n))
        start += n
    return AudioDB(SR, PROTOCOL.segment_s, PROTOCOL.hop_s, tracks, rows), tracks


def query_rows(clips: list[np.ndarray]) -> np.ndarray:
    """The harness's rows for these query clips: each cut into segments on the hop grid."""
    parts, numbers, js = [], [], []
    for i, clip in enumerate(clips):
        segs = cut_segments(clip, PROTOCOL)
        parts.append(segs)
        numbers += [i] * len(segs)
        js += list(range(len(segs)))
    return audio_query_rows(np.concatenate(parts), np.array(numbers), np.array(js))


def test_clean_excerpts_are_found_at_their_offset(world: tuple[AudioDB, list[np.ndarray]]) -> None:
    db, tracks = world
    method = get_method("audfprint")
    method.build(db)
    rng = np.random.default_rng(0)
    truth, clips = [], []
    for _ in range(24):
        t = int(rng.integers(0, len(tracks)))
        start_s = float(rng.uniform(0.0, 50.0))  # not on the DB's hop grid
        clips.append(tracks[t][int(start_s * SR):int((start_s + 6.0) * SR)])
        truth.append((t, start_s))
    q = query_rows(clips)
    result = method.search(q, 10)
    check_search_result(result, "audfprint", method.query_params, len(q), 10, db.n_rows)
    first = np.flatnonzero(q[:, 1] == 0)
    for (t, start_s), row in zip(truth, first):
        found = int(result.ids[row, 0])
        assert found in db.segment_rows[t], f"query of track {t} at {start_s:.2f} s found DB row {found}"
        segment = int(np.flatnonzero(db.segment_rows[t] == found)[0])
        # the DB segment nearest the true start, give or take audfprint's 32 ms frame
        assert abs(segment * PROTOCOL.hop_s - start_s) <= PROTOCOL.hop_s / 2 + 0.04
        # and every later row of the query the segment aligned with it
        later = result.ids[row:row + int((q[:, 0] == q[row, 0]).sum()), 0]
        assert np.array_equal(later, db.segment_rows[t][segment:segment + len(later)])


def test_the_accuracy_pass_in_chunks_never_splits_a_query(world: tuple[AudioDB, list[np.ndarray]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.run import runner

    db, tracks = world
    method = get_method("audfprint")
    method.build(db)
    q = query_rows([tracks[t % len(tracks)][t * SR:(t + 4) * SR] for t in range(12)])  # 12 queries of 4 s
    whole = method.search(q, 5)
    monkeypatch.setattr(runner, "ACCURACY_CHUNK", 10)  # a query has more than 10 rows: chunks end at queries
    chunks = runner.accuracy_chunks(q[:, 0], len(q))
    assert len(chunks) > 1 and all(q[c.start, 1] == 0 for c in chunks)
    parts = runner.accuracy_search(method, q, 5, threads=1)
    np.testing.assert_array_equal(parts.ids, whole.ids)
    assert runner.accuracy_chunks(None, 25, 10) == [slice(0, 10), slice(10, 20), slice(20, 25)]


def test_a_silent_or_very_short_query_is_a_miss(world: tuple[AudioDB, list[np.ndarray]]) -> None:
    db, tracks = world
    method = get_method("audfprint")
    method.build(db)
    silent = np.zeros(int(3.0 * SR), dtype=np.float32)
    short = np.zeros(PROTOCOL.segment_samples, dtype=np.float32)
    short[:int(0.3 * SR)] = tracks[2][int(10.0 * SR):int(10.3 * SR)]  # 0.3 s of music, then nothing
    q = query_rows([silent, short])
    for params in ({"shifts": 1, "min_count": 5}, {"shifts": 4, "min_count": 5}):
        method.set_query_params(**params)
        result = method.search(q, 10)
        check_search_result(result, "audfprint", params, len(q), 10, db.n_rows)
        assert np.all(result.ids == -1)
    analyzer = method._analyzer()
    assert landmark_hashes(analyzer, np.zeros(100), SR).shape == (0, 2)  # shorter than one FFT frame
    assert landmark_hashes(analyzer, short[:int(0.3 * SR)].astype(np.float64), SR, shifts=4).ndim == 2


def test_malformed_query_rows_are_refused(world: tuple[AudioDB, list[np.ndarray]]) -> None:
    db, tracks = world
    method = get_method("audfprint")
    method.build(db)
    q = query_rows([tracks[0][:3 * SR]])
    q[1, 1] = 7  # segment indices 0, 7, 2, ...
    with pytest.raises(ValueError, match="segment indices"):
        method.search(q, 5)
    with pytest.raises(ValueError, match="AudioDB"):
        get_method("audfprint").build(q)


def test_importing_audfprint_leaves_logging_as_it_was() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    audfprint_modules()
    assert (list(root.handlers), root.level) == before


def test_offsets_in_long_tracks_are_not_wrapped(tmp_path: Path) -> None:
    """A track longer than audfprint's default 16,384 frames (8.7 min at 32 ms) keeps its offsets."""
    track = tone_track(7, 600.0, SR)
    n = PROTOCOL.n_segments(len(track))
    db = AudioDB(SR, PROTOCOL.segment_s, PROTOCOL.hop_s, [track], [np.arange(n)])
    method = get_method("audfprint")
    method.build(db)
    start_s = 580.0
    result = method.search(query_rows([track[int(start_s * SR):int((start_s + 6) * SR)]]), 1)
    assert int(result.ids[0, 0]) == round(start_s / PROTOCOL.hop_s)
