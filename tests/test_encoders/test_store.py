"""The on-disk embedding store: memory-mapped reads equal the written rows (and the in-RAM path's),
a run killed midway leaves no torn chunk and resumes to the same rows, damage and other keys are
refused."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.corpora.synth import SynthCorpus
from datasets.protocol import Protocol
from encoders.builtin.checkpoint import untrained_encoder
from encoders.builtin.nafp import EncoderConfig
from encoders.embed import corpus_segments, embed_db
from encoders.store import STATE, StoreError, chunk_bounds, fill_store, open_store

PROTOCOL = Protocol(hop_s=0.25)
TINY = EncoderConfig(channels=(8, 16, 16, 32), dim=16, head_hidden=8)
ROOT = Path(__file__).resolve().parents[2]


def _world(n_tracks: int = 4):
    corpus = SynthCorpus(PROTOCOL, n_tracks=n_tracks, min_duration_s=30, max_duration_s=40, progress=False)
    corpus.ensure_cached()
    encoder = untrained_encoder(PROTOCOL, TINY, seed=0)
    index = corpus_segments(corpus).assign(source="synth")
    return corpus, encoder, index


def test_chunks_cut_only_between_tracks():
    index = pd.DataFrame({"source": "s", "track_id": ["a"] * 5 + ["b"] * 3 + ["c"] * 4, "segment": range(12)})
    assert chunk_bounds(index, 4) == [(0, 5), (5, 12)]
    assert chunk_bounds(index, 100) == [(0, 12)]
    assert chunk_bounds(index, 1) == [(0, 5), (5, 8), (8, 12)]
    with pytest.raises(ValueError, match="contiguous"):
        chunk_bounds(pd.DataFrame({"source": "s", "track_id": ["a", "b", "a"], "segment": [0, 0, 1]}), 1)


def test_memory_mapped_rows_equal_the_written_and_the_in_ram_rows(tmp_path):
    corpus, encoder, index = _world()
    store = fill_store(tmp_path / "store", "k1", index, {"synth": corpus}, encoder, progress=False, chunk_rows=200)
    assert isinstance(store.rows, np.memmap) and not store.rows.flags.writeable
    assert store.rows.shape == (len(index), TINY.dim)
    reference, _ = embed_db(encoder, corpus, index[["track_id", "segment"]], progress=False, cache=False)
    np.testing.assert_allclose(np.asarray(store.rows), reference, atol=1e-5)
    assert store.index[["track_id", "segment"]].equals(index[["track_id", "segment"]].reset_index(drop=True))
    assert len(store.state["chunks"]) > 1
    again = open_store(tmp_path / "store", "k1", verify=True)
    np.testing.assert_array_equal(np.asarray(again.rows), np.asarray(store.rows))
    # a head of rows computed elsewhere is copied in as they are
    head = reference[:50] + 1.0
    headed = fill_store(tmp_path / "headed", "k2", index, {"synth": corpus}, encoder, progress=False, head=head)
    np.testing.assert_array_equal(np.asarray(headed.rows[:50]), head)
    np.testing.assert_allclose(np.asarray(headed.rows[50:]), reference[50:], atol=1e-5)


KILLED_FILL = """
import sys
from datasets.corpora.synth import SynthCorpus
from datasets.protocol import Protocol
from encoders.builtin.checkpoint import untrained_encoder
from encoders.embed import corpus_segments
from encoders.builtin.nafp import EncoderConfig
from encoders.store import fill_store
protocol = Protocol(hop_s=0.25)
corpus = SynthCorpus(protocol, n_tracks=int(sys.argv[2]), min_duration_s=30, max_duration_s=40, progress=False)
encoder = untrained_encoder(protocol, EncoderConfig(channels=(8, 16, 16, 32), dim=16, head_hidden=8), seed=0)
index = corpus_segments(corpus).assign(source="synth")
fill_store(sys.argv[1], "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=1, batch_size=4)
"""


def test_a_killed_fill_leaves_no_torn_chunk_and_resumes_to_the_same_rows(tmp_path):
    n_tracks = 12
    corpus, encoder, index = _world(n_tracks)
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_FILL, str(root), str(n_tracks)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    state = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = json.loads((root / STATE).read_text())
        except (OSError, ValueError):
            state = None
        if state and 2 <= len(state["chunks"]) < n_tracks - 2:
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail(f"the fill ended (exit {proc.returncode}) before it could be killed midway")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((root / STATE).read_text())
    done = state["rows_done"]
    assert not state["complete"] and 0 < done < len(index)
    assert state["chunks"][-1]["stop"] == done  # what is committed is whole chunks, nothing after them
    with pytest.raises(StoreError, match="unfinished"):
        open_store(root, "k")
    # garbage after the committed rows (a chunk written but not committed) is embedded again
    rows = np.load(root / "rows.npy", mmap_mode="r+")
    rows[done:] = np.nan
    rows.flush()
    del rows
    # resumed with another chunk size (as a local fill finished on Ray): the rest is one chunk
    resumed = fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=len(index),
                         batch_size=4)
    assert resumed.state["complete"] and resumed.state["chunks"][:-1] == state["chunks"]
    assert resumed.state["chunks"][-1] == {**resumed.state["chunks"][-1], "start": done, "stop": len(index)}
    whole = fill_store(tmp_path / "whole", "k", index, {"synth": corpus}, encoder, progress=False)
    np.testing.assert_allclose(np.asarray(resumed.rows), np.asarray(whole.rows), atol=1e-5)
    open_store(root, "k", verify=True)


def test_damage_and_other_keys_are_refused(tmp_path):
    corpus, encoder, index = _world(3)
    root = tmp_path / "store"
    fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=100)
    with pytest.raises(StoreError, match="key k, not other"):
        fill_store(root, "other", index, {"synth": corpus}, encoder, progress=False)
    rows = np.load(root / "rows.npy", mmap_mode="r+")
    rows[3, 0] += 1.0
    rows.flush()
    del rows
    with pytest.raises(StoreError, match="do not match their CRC"):
        open_store(root, "k", verify=True)
    with pytest.raises(ValueError, match="not among"):
        fill_store(tmp_path / "x", "k", index.assign(source="nope"), {"synth": corpus}, encoder, progress=False)


def test_a_track_a_little_shorter_than_its_header_is_padded_and_a_much_shorter_one_refused():
    from encoders.store import track_rows

    audio = np.arange(8000 * 3, dtype=np.float32)  # 3 s; at a 0.25 s hop segments 0..8 fit whole
    full = track_rows(audio, PROTOCOL, np.arange(9), "t")
    assert full.shape == (9, 8000) and full[-1, -1] == audio[-1]
    padded = track_rows(audio[:-100], PROTOCOL, np.arange(9), "t")  # 12.5 ms short
    np.testing.assert_array_equal(padded[:, :-100], full[:, :-100])
    assert (padded[-1, -100:] == 0).all()
    with pytest.raises(StoreError, match="t: decodes to 0.50 s, 2.50 s short"):
        track_rows(audio[:4000], PROTOCOL, np.arange(9), "t")


def test_bench_embed_with_worker_processes_goes_through_the_store(capsys):
    from bench.cli.main import main

    assert main(["embed", "--corpus", "synth", "--synth-tracks", "3", "--split", "all", "--workers", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 processes of 1 torch thread" in out and "segments a second at a 0.5 s hop" in out


def test_worker_processes_write_the_same_rows_across_chunks(tmp_path):
    corpus, encoder, index = _world(5)
    one = fill_store(tmp_path / "one", "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=150)
    two = fill_store(tmp_path / "two", "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=150,
                     workers=2)
    assert len(two.state["chunks"]) == len(one.state["chunks"]) > 2
    np.testing.assert_allclose(np.asarray(two.rows), np.asarray(one.rows), atol=1e-5)


def test_a_finished_store_altered_on_disk_is_refused_and_its_check_is_reported(tmp_path, capsys):
    corpus, encoder, index = _world(3)
    root = tmp_path / "store"
    fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False, chunk_rows=100)
    capsys.readouterr()
    fill_store(root, "k", index, {"synth": corpus}, encoder, progress=True)
    err = capsys.readouterr().err
    assert f"{root}: checked the CRCs of {len(index)} rows ({len(index) * TINY.dim * 4 / 1e6:.1f} MB) in" in err
    rows = np.load(root / "rows.npy", mmap_mode="r+")
    rows[len(index) - 1, 0] += 1.0
    rows.flush()
    del rows
    where = re.escape(str(root))
    with pytest.raises(StoreError, match=rf"{where}: rows \d+\.\.{len(index)} do not match their CRC.*remove the "
                                         rf"folder {where} to embed again"):
        fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)


def _snapshot(root: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.iterdir())}


def test_bench_embed_refuses_a_store_filled_for_another_split_seed_or_hop(tmp_path, capsys):
    from bench.cli.main import main

    root = tmp_path / "store"
    common = ["embed", "--corpus", "synth", "--synth-tracks", "3", "--store", str(root), "--no-progress"]
    assert main(common + ["--split", "all"]) == 0
    state = json.loads((root / STATE).read_text())
    assert set(state["identity"]) == {"encoder", "corpus", "protocol", "segments"}
    before = _snapshot(root)
    capsys.readouterr()
    for extra, differing in ((["--split", "test"], "segments"), (["--split", "all", "--synth-seed", "1"], "corpus"),
                             (["--split", "all", "--hop", "0.25"], "protocol.hop_s")):
        assert main(common + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {root}: holds a store ")
        assert differing in re.search(r"\(differing: ([^)]*)\)", err).group(1).split(", ")
        assert "remove the folder to embed again" in err
        assert _snapshot(root) == before
    assert main(common + ["--split", "all"]) == 0  # the same request reuses it


HOLD_LOCK = """
import sys, time
from datasets.folder_lock import folder_lock
with folder_lock(sys.argv[1], "embedding store"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    from datasets.folder_lock import FolderBusyError

    corpus, encoder, index = _world(2)
    root = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"{re.escape(str(root))}: this embedding store is in use "
                                                  rf".*PID {holder.pid} "):
            fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)
        assert not (root / STATE).exists()
    finally:
        holder.kill()
        holder.wait()
    store = fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)  # the dead holder's lock is taken
    assert store.state["complete"]


WORKER_STREAM = """
import time
from datasets.corpora.synth import SynthCorpus
from datasets.protocol import Protocol
from encoders.builtin.checkpoint import untrained_encoder
from encoders.embed import corpus_segments, track_jobs
from encoders.builtin.nafp import EncoderConfig
from encoders.store import process_stream
protocol = Protocol(hop_s=0.25)
corpus = SynthCorpus(protocol, n_tracks=2, min_duration_s=30, max_duration_s=40, progress=False)
encoder = untrained_encoder(protocol, EncoderConfig(channels=(8, 16, 16, 32), dim=16, head_hidden=8), seed=0)
jobs, _ = track_jobs(corpus_segments(corpus), "synth")
rows = process_stream(encoder, {"synth": corpus}, workers=2)(jobs)
next(rows)
print("embedding", flush=True)
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_processes_and_the_resource_tracker_die_with_a_killed_parent():
    proc = subprocess.Popen([sys.executable, "-c", WORKER_STREAM], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "embedding"
        assert len(_children(proc.pid)) >= 3  # two workers and multiprocessing's resource tracker
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session_processes(proc.pid) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_a_truncated_rows_file_is_named_with_its_remedy(tmp_path):
    corpus, encoder, index = _world(2)
    root = tmp_path / "store"
    fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)
    size = (root / "rows.npy").stat().st_size
    os.truncate(root / "rows.npy", size - 64)
    expected = (rf"{re.escape(str(root / 'rows.npy'))} is shorter than its state says \({size - 64} bytes, {size} "
                rf"expected for {len(index)} rows of 16\): the store is damaged; remove the folder "
                rf"{re.escape(str(root))} to embed again")
    with pytest.raises(StoreError, match=expected):
        open_store(root, "k")
    with pytest.raises(StoreError, match=expected):
        fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)
    state = json.loads((root / STATE).read_text())
    (root / STATE).write_text(json.dumps({**state, "complete": False}))  # an unfinished store resumed
    with pytest.raises(StoreError, match=expected):
        fill_store(root, "k", index, {"synth": corpus}, encoder, progress=False)


@pytest.mark.parametrize("size", ["0", "-1"])
def test_bench_embed_refuses_a_batch_size_below_one(size, capsys):
    from bench.cli.main import main

    assert main(["embed", "--corpus", "synth", "--synth-tracks", "3", "--batch-size", size, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --batch-size {size}: allowed >= 1 (segments per forward pass); pass a positive number, " \
                  f"or leave it out for 64\n"
