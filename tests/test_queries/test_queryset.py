"""Query sets: determinism, exact SNR, held-out splits, bad input, resume after interruption."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from datasets.corpora.folder import FolderCorpus
from datasets.folder_lock import FolderBusyError
from datasets.protocol import Protocol
from datasets.queries.degrade import degrade, measured_snr_db
from datasets.queries.queryset import MANIFEST, QuerySetConfig, build_queryset, load_queryset
from tests.conftest import write_tracks

FRACTIONS = {"train": 0.5, "val": 0.0, "test": 0.5}
CONFIG = QuerySetConfig(durations=(1.0, 3.0), snrs=(None, 10.0, 0.0), reverbs=(None, 0.6), per_cell=4, seed=7)


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve 8 s tracks, one 2 s track (too short for 3 s queries) and one corrupt file."""
    root = tmp_path_factory.mktemp("music")
    write_tracks(root, [(f"t{i:02d}.wav", 8.0, 16000, "WAV") for i in range(12)] + [("short.wav", 2.0, 8000, "WAV")])
    (root / "broken.flac").write_bytes(b"fLaC not really")
    return root


def corpus_of(root: Path) -> FolderCorpus:
    with pytest.warns(UserWarning, match="broken.flac"):
        return FolderCorpus(root, Protocol(), FRACTIONS)


def files_of(root: Path) -> dict[str, bytes]:
    """The query set's files (not the folder's lock file) and their bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".flowhash-lock"}


def test_same_seed_same_bytes_other_seed_other_hash(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    a = build_queryset(corpus_of(music), noise, rooms, CONFIG, tmp_path / "a", progress=False)
    b = build_queryset(corpus_of(music), noise, rooms, CONFIG, tmp_path / "b", progress=False)
    assert a.content_hash == b.content_hash
    fa, fb = files_of(a.root), files_of(b.root)
    assert fa.keys() == fb.keys() and len(fa) == 3 + 2 * 3 * 2 * 4
    assert all(fa[k] == fb[k] for k in fa)
    other = QuerySetConfig(**{**CONFIG.to_dict(), "seed": 8})
    c = build_queryset(corpus_of(music), noise, rooms, other, tmp_path / "c", progress=False)
    assert c.content_hash != a.content_hash
    assert not c.manifest()["start_sample"].equals(a.manifest()["start_sample"])


def test_manifest_rows_follow_the_protocol(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    corpus = corpus_of(music)
    qs = build_queryset(corpus, noise, rooms, CONFIG, tmp_path, progress=False)
    m = qs.manifest()
    assert len(m) == 2 * 3 * 2 * 4 and m["query_id"].is_unique
    assert (m.groupby(["duration_s", "snr", "reverb"]).size() == 4).all()
    test_tracks = {t.track_id for t in corpus.tracks("test")}
    assert set(m["track_id"]) <= test_tracks - {"short.wav"}
    hop = corpus.protocol.hop_s
    assert (m["true_segment"] == np.round(m["start_s"] / hop)).all()
    assert (np.abs(m["start_s"] / hop - np.round(m["start_s"] / hop)) > 1e-6).mean() > 0.9  # not on the grid
    for row in m.itertuples():
        track_len = len(corpus.load(row.track_id))
        assert 0 <= row.start_sample <= track_len - row.n_samples
        audio = qs.load_query(row.query_id)
        assert len(audio) == row.n_samples
    noisy = m[m["snr"] != "clean"]
    assert set(noisy["noise_id"]) <= {c.noise_id for c in noise.clips("test")}
    assert (m[m["snr"] == "clean"]["noise_id"] == "").all()
    wet = m[m["reverb"] != "none"]
    assert set(wet["rir_id"]) <= {r.rir_id for r in rooms.rooms("test")}
    assert (np.abs(wet["rt60_measured_s"] - wet["rt60_target_s"]) <= CONFIG.rt60_tolerance).all()
    counts = qs.info["counts"]
    expected = ["short.wav"] if corpus.split("short.wav") == "test" else []
    assert counts["tracks_excluded_short"]["track_ids"] == expected
    assert counts["files_skipped"]["count"] == 1 and "broken.flac" in counts["files_skipped"]["items"][0]["path"]
    seg = qs.segments()
    assert set(seg["track_id"]) == test_tracks
    assert (seg.groupby("track_id")["segment"].max() + 1 == (seg.groupby("track_id").size())).all()


def test_stored_audio_has_the_target_snr(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    corpus = corpus_of(music)
    qs = build_queryset(corpus, noise, rooms, CONFIG, tmp_path, progress=False)
    m = qs.manifest()
    checked = 0
    for row in m[m["snr"] != "clean"].itertuples():
        _, reference = degrade(corpus.load(row.track_id), row.start_sample, row.n_samples,
                               rooms.load(row.rir_id) if row.rir_id else None,
                               noise.load(row.noise_id), row.noise_offset_sample, row.snr_db)
        stored = qs.load_query(row.query_id)
        assert abs(measured_snr_db(reference * row.gain, stored) - row.snr_db) < 0.1
        assert abs(row.measured_snr_db - row.snr_db) < 0.1
        checked += 1
    assert checked == 2 * 2 * 2 * 4


def test_splits_of_tracks_noise_and_rooms_are_disjoint(music: Path, banks) -> None:
    noise, rooms = banks
    corpus = corpus_of(music)
    for ids in ({t.track_id: corpus.split(t.track_id) for t in corpus.tracks()},
                {c.noise_id: c.split for c in noise.clips()}, {r.rir_id: r.split for r in rooms.rooms()}):
        train = {i for i, s in ids.items() if s == "train"}
        test = {i for i, s in ids.items() if s == "test"}
        assert train and test and train.isdisjoint(test)
    train_noise = {noise.load(c.noise_id).tobytes() for c in noise.clips("train")}
    assert all(noise.load(c.noise_id).tobytes() not in train_noise for c in noise.clips("test"))


class InterruptingCorpus(FolderCorpus):
    """A real folder corpus that stops the build (as Ctrl-C would) when it loads one track."""

    def __init__(self, *args, stop_at: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_at, self.loads = stop_at, 0

    def load(self, track_id: str) -> np.ndarray:
        self.loads += 1
        if track_id == self.stop_at and self.loads > len(self.tracks("test")):  # during rendering
            raise KeyboardInterrupt
        return super().load(track_id)


def test_interrupted_build_resumes_to_the_same_result(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    reference = build_queryset(corpus_of(music), noise, rooms, CONFIG, tmp_path / "ref", progress=False)
    last = sorted(reference.manifest()["track_id"])[-1]
    with pytest.warns(UserWarning):
        flaky = InterruptingCorpus(music, Protocol(), FRACTIONS, stop_at=last)
    with pytest.raises(KeyboardInterrupt):
        build_queryset(flaky, noise, rooms, CONFIG, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "queryset.json").exists()
    done = sorted((tmp_path / "run" / "audio").glob("*.flac"))
    assert 0 < len(done) < len(reference.manifest())
    before = {p.name: p.stat().st_mtime_ns for p in done}
    resumed = build_queryset(corpus_of(music), noise, rooms, CONFIG, tmp_path / "run", progress=False)
    assert resumed.content_hash == reference.content_hash
    assert {p.name: p.stat().st_mtime_ns for p in done} == before  # not rendered twice
    assert load_queryset(tmp_path / "run").content_hash == reference.content_hash


def test_another_config_in_the_same_folder_needs_force(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    build_queryset(corpus_of(music), noise, rooms, CONFIG, tmp_path, progress=False)
    small = QuerySetConfig(durations=(1.0,), snrs=(None,), reverbs=(None,), per_cell=2)
    with pytest.raises(ValueError, match="holds another query set"):
        build_queryset(corpus_of(music), noise, rooms, small, tmp_path, progress=False)
    build_queryset(corpus_of(music), noise, rooms, small, tmp_path, progress=False, force=True)
    assert len(list((tmp_path / "audio").glob("*.flac"))) == 2 == len(pd.read_parquet(tmp_path / MANIFEST))


def test_no_track_long_enough_is_a_clear_error(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    long = QuerySetConfig(durations=(30.0,), snrs=(None,), reverbs=(None,), per_cell=1)
    with pytest.raises(ValueError, match="no readable test-split track is at least 30 s long"):
        build_queryset(corpus_of(music), noise, rooms, long, tmp_path, progress=False)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True)


def test_cli_help_lists_subcommands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("queries", "corpus"):
        assert name in out.stdout
    assert "--per-cell" in run_cli("queries", "--help").stdout


@pytest.mark.parametrize("args, message", [
    (["--snr", "clean", "90"], "SNR 90 dB is out of range; allowed: 'clean' or a number of dB in [-20, 60]"),
    (["--durations", "0.2"], "query duration 0.2 s is out of range"),
    (["--reverb", "soft"], "reverb RT60 'soft' is not a number"),
    (["--corpus", "spotify"], "invalid choice: 'spotify' (choose from 'synth', 'folder', 'fma', 'debian-music')"),
    (["--transforms", "none", "warp:2"], "queries.transforms[1]: transform 'warp:2' is not allowed; allowed: 'none'"),
    (["--transforms", "pitch:1", "Pitch:+1"], "queries.transforms: 'pitch:1' appears twice"),
    (["--absent-share", "0.7"], "queries.absent_share=0.7: allowed a number in [0, 0.5]"),
])
def test_cli_bad_input_names_value_and_allowed(args: list[str], message: str) -> None:
    out = run_cli("queries", *args)
    assert out.returncode == 2
    assert message in out.stderr


def test_cli_missing_fma_path_explains_layout(tmp_path: Path) -> None:
    out = run_cli("queries", "--corpus", "fma", "--corpus-path", str(tmp_path / "fma"))
    assert out.returncode == 2 and "expected layout" in out.stderr


@pytest.mark.slow
def test_cli_builds_default_synth_queryset_end_to_end(tmp_path: Path) -> None:
    args = ["queries", "--per-cell", "2", "--out", str(tmp_path / "qs"), "--no-progress"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "content hash" in first.stdout and first.stdout.split("content hash")[1].split()[0] == \
        second.stdout.split("content hash")[1].split()[0]
    m = pd.read_parquet(tmp_path / "qs" / MANIFEST)
    assert len(m) == 4 * 5 * 4 * 2 and m["track_id"].str.startswith("synth-").all()
    audio, sr = sf.read(tmp_path / "qs" / "audio" / "q00000.flac")
    assert sr == 8000 and len(audio) == 8000


SMALL = QuerySetConfig(durations=(1.0,), snrs=(None, 10.0), reverbs=(None,), per_cell=3, seed=3)


@pytest.mark.parametrize("field, values, message", [
    ("durations", (1, 2.0, 1.0), "queries.durations: 1 appears twice (given as 1 and 1.0)"),
    ("snrs", ("clean", 10.0, None), "queries.snrs: clean appears twice (given as 'clean' and None)"),
    ("reverbs", (0.6, None, 0.6), "queries.reverbs: 0.6 appears twice"),
])
def test_repeated_condition_values_are_refused(field: str, values: tuple, message: str) -> None:
    with pytest.raises(ValueError) as err:
        QuerySetConfig(**{field: values})
    assert str(err.value) == message + "; list each condition value once"


def test_repeated_condition_value_on_the_command_line_names_the_option(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    from bench.cli.main import main

    missing = str(tmp_path / "no-such-corpus")  # checked after the grid: the command stops before any work
    assert main(["queries", "--snr", "clean", "10", "10.0", "--corpus", "folder", "--corpus-path", missing]) == 2
    assert capsys.readouterr().err == "error: --snr: 10 appears twice; list each condition value once\n"


def test_repeated_condition_value_in_a_yaml_config_names_the_file(tmp_path: Path) -> None:
    from bench.run.config import load_config

    path = tmp_path / "run.yml"
    path.write_text("queries:\n  durations: [1, 2, 1.0]\n")
    with pytest.raises(ValueError, match=r"run.yml: queries.durations: 1 appears twice"):
        load_config(path)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def test_damaged_query_audio_is_named_and_rebuilt_on_reuse(music: Path, banks, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    noise, rooms = banks
    qs = build_queryset(corpus_of(music), noise, rooms, SMALL, tmp_path, progress=False)
    before = files_of(tmp_path)
    capsys.readouterr()
    truncate(tmp_path / "audio" / "q00004.flac")
    (tmp_path / "audio" / "q00001.flac").unlink()
    with pytest.raises(RuntimeError, match=r"q00004.flac: cannot read this query's audio .*rebuild the query set"):
        qs.load_query("q00004")
    again = build_queryset(corpus_of(music), noise, rooms, SMALL, tmp_path, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audio/q00001.flac is missing" in err[0] and "1 more" in err[0]
    assert "rebuilding the query set" in err[0]
    assert again.content_hash == qs.content_hash and files_of(tmp_path) == before
    assert len(again.load_query("q00004")) == 8000


def test_query_set_from_before_file_digests_is_checked_once(music: Path, banks, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    noise, rooms = banks
    qs = build_queryset(corpus_of(music), noise, rooms, SMALL, tmp_path, progress=False)
    info_path = tmp_path / "queryset.json"
    info = json.loads(info_path.read_text())
    assert set(info.pop("file_sha256")) == {"manifest.parquet", "segments.parquet"} | {
        f"audio/q{i:05d}.flac" for i in range(6)}
    info_path.write_text(json.dumps(info))  # as a query set built before digests were recorded
    audio = tmp_path / "audio" / "q00002.flac"
    mtime = audio.stat().st_mtime_ns
    capsys.readouterr()
    assert build_queryset(corpus_of(music), noise, rooms, SMALL, tmp_path, progress=False).content_hash == \
        qs.content_hash
    assert audio.stat().st_mtime_ns == mtime and capsys.readouterr().err == ""  # not rebuilt
    assert "file_sha256" in json.loads(info_path.read_text())
    info_path.write_text(json.dumps(info))
    truncate(audio)
    again = build_queryset(corpus_of(music), noise, rooms, SMALL, tmp_path, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audio/q00002.flac" in err[0] and "rebuilding the query set" in err[0]
    assert again.content_hash == qs.content_hash and len(again.load_query("q00002")) == 8000


def test_a_large_query_grid_warns_before_any_work(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    big = QuerySetConfig(durations=(30.0,), snrs=(None, 10.0), reverbs=(None, 0.6), per_cell=10000)
    message = r"rendering 40000 queries: 333 h of audio, about [\d.]+ GB of FLAC .* about [\d.]+ h to render"
    with pytest.warns(UserWarning, match=message), pytest.raises(ValueError, match="at least 30 s long"):
        build_queryset(corpus_of(music), noise, rooms, big, tmp_path, progress=False)  # warns before the scan
    assert not (tmp_path / "audio").exists()


HOLD_LOCK = """
import sys, time
from datasets.folder_lock import folder_lock
with folder_lock(sys.argv[1], "query-set folder"), folder_lock(sys.argv[2], "query-set folder"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_builder_of_the_same_folder_is_refused(music: Path, banks, tmp_path: Path) -> None:
    noise, rooms = banks
    done, fresh = tmp_path / "done", tmp_path / "fresh"
    build_queryset(corpus_of(music), noise, rooms, SMALL, done, progress=False)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(done), str(fresh)], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parents[2], env={**os.environ, "PYTHONPATH": "."})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError, match=rf"in use by another process \(PID {holder.pid} "):
            build_queryset(corpus_of(music), noise, rooms, SMALL, fresh, progress=False)
        assert not (fresh / "audio").exists()
        assert len(build_queryset(corpus_of(music), noise, rooms, SMALL, done, progress=False).manifest()) == 6
        (done / "audio" / "q00000.flac").unlink()
        with pytest.raises(FolderBusyError, match=rf"PID {holder.pid} "):
            build_queryset(corpus_of(music), noise, rooms, SMALL, done, progress=False)
    finally:
        holder.kill()
        holder.wait()
