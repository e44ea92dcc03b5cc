"""Tracker modules rendered with libopenmpt: a ProTracker module the test writes renders to audio of
the song's length and pitch, once, and the distractor recipe takes the render as a track."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from datasets.corpora.debian_distractors import DISTRACTOR_SPLIT, DebianDistractorCorpus, PackageRule
from datasets.corpora.tracker_modules import (
    MODULE_RENDERS,
    TrackerRenderError,
    load_libopenmpt,
    render_module,
    render_modules,
)
from datasets.protocol import Protocol

ROWS, TICKS_PER_ROW, BPM = 64, 6, 125  # ProTracker defaults: a tick lasts 2.5 / BPM s
PATTERN_S = ROWS * TICKS_PER_ROW * 2.5 / BPM  # 7.68 s
PERIOD = 428  # C-2 on the Amiga period table
SAMPLE_WORDS = 16  # one 32-byte square-wave cycle, looped
PAL_CLOCK = 7093789.2


def protracker_module(orders: list[int]) -> bytes:
    """A 4-channel ProTracker ("M.K.") module: one looped square-wave sample, each pattern a note
    every four rows on channel 1 (period 428), played in ``orders``."""
    head = b"flowhash test".ljust(20, b"\0")
    sample = b"square".ljust(22, b"\0") + struct.pack(">HBBHH", SAMPLE_WORDS, 0, 64, 0, SAMPLE_WORDS)
    samples = sample + (b"\0" * 22 + struct.pack(">HBBHH", 0, 0, 0, 0, 1)) * 30
    table = bytes(orders).ljust(128, b"\0")
    cell = bytes([(1 & 0xF0) | (PERIOD >> 8), PERIOD & 0xFF, (1 & 0x0F) << 4, 0])
    rows = [cell + b"\0" * 12 if r % 4 == 0 else b"\0" * 16 for r in range(ROWS)]
    patterns = b"".join(rows) * (max(orders) + 1)
    wave = bytes([100] * SAMPLE_WORDS + [156] * SAMPLE_WORDS)  # +100 / -100 as signed bytes
    return head + samples + bytes([len(orders), 127]) + table + b"M.K." + patterns + wave


@pytest.fixture(scope="module")
def libopenmpt(tmp_path_factory):
    try:
        return load_libopenmpt(tmp_path_factory.mktemp("libopenmpt"), progress=False)
    except TrackerRenderError as exc:
        pytest.skip(f"no libopenmpt here: {exc}")


def test_a_module_renders_once_through_at_its_pitch(libopenmpt, tmp_path):
    path = tmp_path / "song.mod"
    path.write_bytes(protracker_module([0, 1, 0, 1, 0, 1, 0]))
    seconds = render_module(path, tmp_path / "song.mod.flac", libopenmpt, sample_rate=22050)
    assert abs(seconds - 7 * PATTERN_S) < 0.05 * PATTERN_S  # once through: no loop back to the start
    audio, sr = sf.read(tmp_path / "song.mod.flac")
    assert sr == 22050 and audio.ndim == 1 and abs(len(audio) / sr - seconds) < 1e-6
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    spectrum = np.abs(np.fft.rfft(audio[: sr * 4]))
    expected_hz = PAL_CLOCK / (2 * PERIOD) / (2 * SAMPLE_WORDS)  # one cycle of 32 bytes at the period's rate
    peak_hz = np.argmax(spectrum[1:]) / 4 + 0.25
    assert abs(peak_hz - expected_hz) < 0.03 * expected_hz
    again = render_module(path, tmp_path / "again.flac", libopenmpt, sample_rate=22050)
    assert again == seconds and np.array_equal(sf.read(tmp_path / "again.flac")[0], audio)


def test_not_a_module_is_a_clear_error(libopenmpt, tmp_path):
    path = tmp_path / "noise.xm"
    path.write_bytes(b"not a tracker module" * 10)
    with pytest.raises(TrackerRenderError, match="noise.xm"):
        render_module(path, tmp_path / "noise.flac", libopenmpt)
    assert not (tmp_path / "noise.flac").exists()


def test_the_recipe_takes_rendered_modules_as_tracks(libopenmpt, tmp_path):
    tree = tmp_path / "pkg-tracker"
    music = tree / "usr/share/games/tracker/music"
    music.mkdir(parents=True)
    (music / "long.mod").write_bytes(protracker_module([0, 1] * 4))  # 61 s
    (music / "short.mod").write_bytes(protracker_module([0, 1]))  # 15 s: too short for the recipe
    (tree / "usr/share/games/tracker/broken.xm").write_bytes(b"broken" * 50)
    rules = {"pkg-tracker": PackageRule(files=MODULE_RENDERS, modules=True)}
    corpus = DebianDistractorCorpus(Protocol(hop_s=0.25), root=tmp_path, packages=rules, fetch=False,
                                    progress=False)
    tracks = corpus.tracks()
    assert [t.track_id.rsplit("/", 1)[-1] for t in tracks] == ["long.mod"]
    assert corpus.split(tracks[0].track_id) == DISTRACTOR_SPLIT
    assert abs(tracks[0].duration_s - 8 * PATTERN_S) < 0.5
    assert render_modules(tree, tree / ".unpacked", skip=(".unpacked",)) == 0  # rendered once, kept
