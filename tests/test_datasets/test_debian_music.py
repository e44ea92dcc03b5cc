"""The debian-music recipe on fake extracted package trees (no apt, no network)."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.audio_io import resample
from datasets.corpora.debian_music import (
    DebianMusicCorpus,
    build_catalogue,
    is_music_path,
    select_music_files,
    sped_up_reason,
)
from datasets.debian_packages import MARKER, DebianFetchError, fetch_packages
from datasets.splits import split_of
from tests.helpers import music_like, write_audio

SR = 8000
MUSIC_A = "usr/share/games/pkga/music"
MUSIC_B = "usr/share/pkgb/data/Music"




def make_tree(root: Path) -> Path:
    """Two fake extracted packages: music, sound effects, sped-up copies, duplicates, a corrupt file."""
    a, b = root / "pkga", root / "pkgb"
    alpha = music_like(50, seed=1)
    beta = music_like(70, seed=2)
    write_audio(a / MUSIC_A / "alpha.ogg", alpha)
    write_audio(a / MUSIC_A / "beta.ogg", beta, 22050)
    # A sped-up copy (70 s played in 60 s): left out by its name.
    write_audio(a / MUSIC_A / "beta_fast.ogg", resample(beta, 7 * SR, 6 * SR))
    write_audio(a / MUSIC_A / "gamma.ogg", music_like(55, seed=3))
    write_audio(a / MUSIC_A / "gamma_f.ogg", music_like(50, seed=4))    # beside gamma.ogg: sped-up
    write_audio(a / MUSIC_A / "jingle.ogg", music_like(10, seed=5))     # too short
    (a / MUSIC_A / "broken.ogg").write_bytes(b"OggS" + bytes(range(256)) * 20)  # corrupt
    write_audio(a / "usr/share/games/pkga/sounds/boom.wav", music_like(2, seed=6), fmt="WAV")
    write_audio(a / "usr/share/games/pkga/sounds/ambience.ogg", music_like(60, seed=7))  # not music
    (a / "usr/share/doc/pkga").mkdir(parents=True)
    (a / "usr/share/doc/pkga/copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/"
                                                    "copyright-format/1.0/\nLicense: CC-BY-SA-3.0\n")
    with gzip.open(a / "usr/share/doc/pkga/changelog.Debian.gz", "wt") as fh:
        fh.write("pkga (1.2-3) unstable; urgency=medium\n\n  * Fake.\n")
    # Package b: alpha re-encoded under another name (shorter by 1 s), a partial copy of
    # beta (30 s of it), and one new track.
    write_audio(b / MUSIC_B / "theme.ogg", 0.6 * alpha[: 49 * SR], 16000)
    write_audio(b / MUSIC_B / "partial.flac", np.concatenate([music_like(25, seed=8), beta[20 * SR:50 * SR]]),
           fmt="FLAC")
    write_audio(b / MUSIC_B / "delta.wav", music_like(48, seed=9), fmt="WAV")
    (b / "usr/share/doc/pkgb").mkdir(parents=True)
    (b / "usr/share/doc/pkgb/copyright").write_text("License: GPL-2+\n")
    (b / MARKER).write_text(json.dumps({"package": "pkgb", "version": "2:0.9-1"}))
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("debs"))


EXPECTED = {"pkga/usr/share/games/pkga/music/alpha", "pkga/usr/share/games/pkga/music/beta",
            "pkga/usr/share/games/pkga/music/gamma", "pkgb/usr/share/pkgb/data/Music/delta"}


def test_name_rules(tmp_path):
    assert sped_up_reason(Path("m/celtic_fast.ogg"), ["celtic", "celtic_fast"])
    assert sped_up_reason(Path("m/ravenbridge_mansion_fast.ogg"), [])
    assert sped_up_reason(Path("m/farm_f.ogg"), ["farm", "farm_f"])
    assert sped_up_reason(Path("m/farm_f.ogg"), ["farm_f"]) is None      # no sibling: kept
    assert sped_up_reason(Path("m/fast_lane.ogg"), ["fast_lane"]) is None
    assert sped_up_reason(Path("m/breakfast.ogg"), ["breakfast"]) is None
    assert is_music_path("usr/share/games/x/Data/Music/a.ogg")
    assert is_music_path("usr/share/x/audio/music/menu/a.ogg")
    assert not is_music_path("usr/share/x/sounds/music.ogg")  # the file name alone is not enough


def test_select_music_files(tree):
    excluded = []
    cands = select_music_files(tree / "pkga", on_exclude=excluded.append)
    assert [c.track_id for c in cands] == sorted(i for i in EXPECTED if i.startswith("pkga"))
    assert all(c.package == "pkga" and c.duration_s >= 45 for c in cands)
    assert cands[0].rel_path == f"{MUSIC_A}/alpha.ogg" and cands[0].path.is_file()
    kinds = {Path(e.rel_path).name: e.kind for e in excluded}
    assert kinds == {"beta_fast.ogg": "sped-up copy", "gamma_f.ogg": "sped-up copy",
                     "jingle.ogg": "too short", "broken.ogg": "unreadable"}


def test_build_catalogue(tree, tmp_path):
    cands = select_music_files(tree / "pkga") + select_music_files(tree / "pkgb")
    cat = build_catalogue(cands, tmp_path / "fp", progress=False)
    assert {r["track_id"] for r in cat.tracks} == EXPECTED
    dups = {Path(e.rel_path).name: e for e in cat.excluded if e.kind == "duplicate"}
    assert set(dups) == {"theme.ogg", "partial.flac"}
    assert dups["theme.ogg"].duplicate_of == "pkga/usr/share/games/pkga/music/alpha"
    assert dups["theme.ogg"].overlap_s > 45
    assert dups["partial.flac"].duplicate_of == "pkga/usr/share/games/pkga/music/beta"
    assert abs(dups["partial.flac"].overlap_s - 30) < 1.5
    assert abs(dups["partial.flac"].offset_s - (20 - 25)) < 0.05  # time in beta - time in partial
    rows = {r["track_id"]: r for r in cat.tracks}
    alpha = rows["pkga/usr/share/games/pkga/music/alpha"]
    assert alpha["version"] == "1.2-3" and alpha["licence"] == "usr/share/doc/pkga/copyright"
    assert alpha["path"] == f"{MUSIC_A}/alpha.ogg" and abs(alpha["duration_s"] - 50) < 0.1
    assert rows["pkgb/usr/share/pkgb/data/Music/delta"]["version"] == "2:0.9-1"
    # Fingerprints are cached by sha256: a second build decodes nothing.
    assert len(list((tmp_path / "fp").glob("*.npz"))) == len(cands)
    again = build_catalogue(cands, tmp_path / "fp", progress=False)
    assert again.timings["fingerprints_cached"] == len(cands)
    assert again.tracks == cat.tracks


def test_corpus(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    shutil.copytree(tree, root)
    with pytest.warns(UserWarning, match="broken.ogg"):
        corpus = DebianMusicCorpus(root=root, packages=("pkga", "pkgb"), fetch=False, progress=False)
    assert {t.track_id for t in corpus.tracks()} == EXPECTED
    assert [Path(s.path).name for s in corpus.skipped] == ["broken.ogg"]
    assert not corpus.from_manifest
    t = corpus.track("pkga/usr/share/games/pkga/music/beta")
    assert t.meta["package"] == "pkga" and t.meta["version"] == "1.2-3"
    assert t.meta["licence"] == "usr/share/doc/pkga/copyright" and abs(t.duration_s - 70) < 0.1
    audio = corpus.load(t.track_id)
    assert audio.dtype == np.float32 and abs(audio.size / SR - 70) < 0.1
    # Manifest and report in the root folder.
    manifest = pd.read_csv(root / "tracks.csv")
    assert set(manifest["track_id"]) == EXPECTED
    report = pd.read_csv(root / "dedup_report.csv")
    assert sorted(report["kind"]) == sorted(["duplicate", "duplicate", "sped-up copy", "sped-up copy",
                                             "too short", "unreadable"])
    assert json.loads((root / "catalogue.json").read_text())["n_tracks"] == 4
    # Splits: a function of the id alone, stable across instances; a partition of the tracks.
    split = {i: corpus.split(i) for i in EXPECTED}
    assert split == {i: split_of(i, corpus.split_fractions, salt="track") for i in EXPECTED}
    assert sorted(t.track_id for s in ("train", "val", "test") for t in corpus.tracks(s)) == sorted(EXPECTED)
    # A re-run reads the manifest (no decoding) and gives the same corpus.
    import datasets.corpora.debian_music as dm

    monkeypatch.setattr(dm, "build_catalogue", lambda *a, **k: pytest.fail("rebuilt the catalogue"))
    with pytest.warns(UserWarning, match="broken.ogg"):
        again = DebianMusicCorpus(root=root, packages=("pkga", "pkgb"), fetch=True, progress=False)
    assert again.from_manifest
    assert again.identity() == corpus.identity()
    assert {i: again.split(i) for i in EXPECTED} == split
    assert len(again.skipped) == 1 and len(again.excluded) == len(corpus.excluded)


def test_missing_package_with_fetch_false(tree, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tree / "pkgb", root / "pkgb")
    with pytest.warns(UserWarning, match="pkga"):
        corpus = DebianMusicCorpus(root=root, packages=("pkga", "pkgb"), fetch=False, progress=False)
    assert set(corpus.failed_packages) == {"pkga"}
    # Without pkga, theme.ogg and partial.flac have nothing to duplicate.
    assert {t.track_id.rsplit("/", 1)[1] for t in corpus.tracks()} == {"theme", "partial", "delta"}


def test_apt_not_available(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(DebianFetchError) as info:
        DebianMusicCorpus(root=tmp_path / "root", packages=("supertux-data",), progress=False)
    msg = str(info.value)
    assert "apt-get" in msg and "supertux-data" in msg and "--path" in msg


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
                    reason="needs dpkg-deb to build a test package")
def test_fetch_with_fake_apt(tmp_path, monkeypatch):
    """A fake apt-get serves one package and fails on another: the good one is extracted."""
    src = tmp_path / "src"
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN/control").write_text("Package: good\nVersion: 1.0-1\nArchitecture: all\n"
                                        "Maintainer: t <t@example.org>\nDescription: test\n")
    write_audio(src / "usr/share/games/good/music/song.ogg", music_like(46, seed=12))
    (src / "usr/share/doc/good").mkdir(parents=True)
    (src / "usr/share/doc/good/copyright").write_text("License: CC0\n")
    deb = tmp_path / "good_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(src), str(deb)], check=True,
                   capture_output=True)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    script = fake / "apt-get"
    script.write_text(f"#!/bin/sh\nif [ \"$2\" = good ]; then cp {deb} .; exit 0; fi\n"
                      "echo \"E: Unable to locate package $2\" >&2\nexit 100\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    dest = tmp_path / "cache"
    errors: dict[str, str] = {}
    with pytest.warns(UserWarning, match="package bad"):
        trees = fetch_packages(["good", "bad"], dest, progress=False, errors=errors)
    assert list(trees) == ["good"] and (trees["good"] / "usr/share/games/good/music/song.ogg").is_file()
    assert "apt-get download bad" in errors["bad"] and "Unable to locate package" in errors["bad"]
    assert json.loads((trees["good"] / MARKER).read_text())["version"] == "1.0-1"
    with pytest.warns(UserWarning, match="package bad"):
        corpus = DebianMusicCorpus(root=dest, packages=("good", "bad"), progress=False)
    assert [t.track_id for t in corpus.tracks()] == ["good/usr/share/games/good/music/song"]
    assert corpus.track("good/usr/share/games/good/music/song").meta["version"] == "1.0-1"
    assert set(corpus.failed_packages) == {"bad"}
    assert "package failed" in set(pd.read_csv(dest / "dedup_report.csv")["kind"])
    with pytest.raises(DebianFetchError, match="no package could be fetched"), pytest.warns(UserWarning):
        fetch_packages(["bad"], tmp_path / "other", progress=False)


def test_recipe_splits_share_no_content(tree, tmp_path, monkeypatch):
    """Content fingerprints, not names: the raw package files hold the same music under other
    names, and the corpus the recipe builds from them has no train track sharing audio with a
    val or test track (down to 5 s of shared audio)."""
    from datasets.audio_io import read_audio
    from datasets.dedup import find_overlaps, fingerprint
    from datasets.overlap import track_fingerprints, track_overlap, track_overlap_pairs

    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    shutil.copytree(tree, root)
    with pytest.warns(UserWarning, match="broken.ogg"):
        corpus = DebianMusicCorpus(root=root, packages=("pkga", "pkgb"), fetch=False, progress=False)
    raw = select_music_files(root / "pkga") + select_music_files(root / "pkgb")
    prints = {c.track_id: fingerprint(read_audio(c.path, SR), SR) for c in raw}
    shared = find_overlaps(prints, min_overlap_s=5.0)
    assert len(shared) >= 2  # theme.ogg = alpha, partial.flac holds 30 s of beta
    assert set(track_fingerprints(corpus)) == EXPECTED
    assert track_overlap_pairs(corpus, min_overlap_s=5.0) == []
    assert track_overlap(corpus, min_overlap_s=5.0) == 0
