"""The debian noise bank on fake extracted package trees (no apt, no network), and combined banks."""
from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.audio_io import read_audio
from datasets.debian_packages import MARKER, DebianFetchError
from datasets.dedup import Overlap, content_groups, find_overlaps, fingerprint
from datasets.noise.bank import CombinedNoiseBank, NoiseBankError
from datasets.noise.debian import (
    KINDS,
    RECIPE,
    Activity,
    DebianNoiseBank,
    RecipeEntry,
    activity,
    check_recipe,
    recipe_packages,
    reuse_debs,
    select_noise_files,
)
from datasets.noise.registry import open_noise_bank
from datasets.noise.synth import SynthNoiseBank
from datasets.overlap import noise_overlap, noise_overlap_pairs
from datasets.protocol import Protocol
from tests.helpers import ambience, write_audio

SR = 8000
A = "usr/share/games/pkga/sounds"
B = "usr/share/pkgb/sfx"






RAIN = ambience(7, 3)
WIND = ambience(10, 4)


def make_tree(root: Path) -> Path:
    """Two fake packages: ambience, copies under other names, a partial overlap, bad files."""
    a, b = root / "pkga", root / "pkgb"
    write_audio(a / A / "ambient/forest_day.ogg", ambience(8, 1))
    write_audio(a / A / "ambient/forest_night.wav", ambience(6, 2), fmt="WAV")
    write_audio(a / A / "ambient/rain.ogg", RAIN, 22050)
    write_audio(a / A / "loops/drizzle.ogg", 0.7 * RAIN)                       # a copy, other name and folder
    write_audio(a / A / "loops/wind.ogg", WIND)
    write_audio(a / A / "loops/wind_gust.wav", np.concatenate([WIND[3 * SR:5 * SR], ambience(2, 5)]), fmt="WAV")
    (a / A / "ambient/forest_link.ogg").symlink_to("forest_day.ogg")
    (a / "usr/share/doc/pkga").mkdir(parents=True)
    (a / "usr/share/doc/pkga/copyright").write_text("License: CC-BY-SA-3.0\n")
    write_audio(b / B / "river.flac", np.concatenate([ambience(6, 6), np.zeros(SR, np.float32)]), fmt="FLAC")
    write_audio(b / B / "waterfall.ogg", ambience(5, 7), 16000)
    write_audio(b / B / "machine_1.wav", ambience(4, 8), fmt="WAV")
    write_audio(b / B / "machine_2.wav", ambience(4, 9), fmt="WAV")
    write_audio(b / B / "rain_loop.wav", 0.3 * RAIN[: 6 * SR], 11025, fmt="WAV")  # copy in another package
    write_audio(b / B / "beep.wav", ambience(1, 10), fmt="WAV")
    gappy = ambience(6, 11)
    gappy[2 * SR:4 * SR] = 0.0
    write_audio(b / B / "gappy.wav", gappy, fmt="WAV")
    (b / B / "broken.ogg").write_bytes(b"OggS" + bytes(range(256)) * 20)
    (b / MARKER).write_text('{"package": "pkgb", "version": "2.0-1"}')
    return root


RECIPE_T = (
    RecipeEntry("pkga", f"{A}/ambient/forest_*", "forest"),
    RecipeEntry("pkga", f"{A}/ambient/rain.ogg", "rain"),
    RecipeEntry("pkga", f"{A}/loops/drizzle.ogg", "rain"),
    RecipeEntry("pkga", f"{A}/loops/wind*", "wind"),
    RecipeEntry("pkga", f"{A}/loops/missing.ogg", "wind"),
    RecipeEntry("pkgb", f"{B}/river.flac", "water"),
    RecipeEntry("pkgb", f"{B}/waterfall.ogg", "water"),
    RecipeEntry("pkgb", f"{B}/machine_[0-9].wav", "machine"),
    RecipeEntry("pkgb", f"{B}/rain_loop.wav", "rain"),
    RecipeEntry("pkgb", f"{B}/beep.wav", "machine"),
    RecipeEntry("pkgb", f"{B}/gappy.wav", "crowd"),
    RecipeEntry("pkgb", f"{B}/broken.ogg", "crowd"),
)


def nid(pkg: str, rel: str) -> str:
    return f"debian-noise/{pkg}/{rel.rsplit('.', 1)[0]}"


KEPT = {nid("pkga", f"{A}/ambient/forest_day"), nid("pkga", f"{A}/ambient/forest_night"),
        nid("pkga", f"{A}/ambient/rain"), nid("pkga", f"{A}/loops/wind"), nid("pkga", f"{A}/loops/wind_gust"),
        nid("pkgb", f"{B}/river"), nid("pkgb", f"{B}/waterfall"), nid("pkgb", f"{B}/machine_1"),
        nid("pkgb", f"{B}/machine_2")}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="module")
def bank(tree):
    with pytest.MonkeyPatch.context() as mp, pytest.warns(UserWarning, match="broken.ogg"):
        mp.setenv("FLOWHASH_BENCH_CACHE", str(tree.parent / "cache"))
        return DebianNoiseBank(Protocol(), root=tree, recipe=RECIPE_T, fetch=False, progress=False)


# --------------------------------------------------------------------------- recipe


def test_default_recipe_is_valid():
    assert check_recipe(RECIPE) == RECIPE
    assert {e.kind for e in RECIPE} == set(KINDS)
    assert len({(e.package, e.pattern) for e in RECIPE}) == len(RECIPE)
    assert all(e.pattern.startswith("usr/") for e in RECIPE)
    assert "megaglest-data" in recipe_packages() and len(recipe_packages()) == len(set(recipe_packages()))


@pytest.mark.parametrize("entry, match", [
    (RecipeEntry("pkga", "usr/x.ogg", "traffic"), r"kind 'traffic' is not one of \['forest'"),
    (RecipeEntry("pkga", "/usr/x.ogg", "rain"), "relative path inside the package"),
    (RecipeEntry("pkga", "usr/../x.ogg", "rain"), "without '..'"),
    (RecipeEntry("pkg_a", "usr/x.ogg", "rain"), "not a Debian package name"),
    (("pkga", "usr/x.ogg", "rain"), "expected a RecipeEntry"),
])
def test_bad_recipe(entry, match):
    with pytest.raises(NoiseBankError, match=match):
        check_recipe([RecipeEntry("pkga", "usr/ok.ogg", "rain"), entry])
    with pytest.raises(NoiseBankError, match="empty"):
        check_recipe([])


def test_select_noise_files(tree):
    excluded = []
    cands = select_noise_files({"pkga": tree / "pkga", "pkgb": tree / "pkgb"}, RECIPE_T, on_exclude=excluded.append)
    kinds = {c.track_id: c.kind for c in cands}
    assert kinds[nid("pkga", f"{A}/ambient/forest_day")] == "forest"
    assert kinds[nid("pkga", f"{A}/loops/wind_gust")] == "wind"
    assert kinds[nid("pkga", f"{A}/loops/drizzle")] == "rain"
    assert {nid("pkgb", f"{B}/machine_1"), nid("pkgb", f"{B}/machine_2")} <= set(kinds)
    assert nid("pkgb", f"{B}/gappy") in kinds  # the silence rules come later, after decoding
    why = {(e.kind, Path(e.rel_path).name) for e in excluded}
    assert why == {("link", "forest_link.ogg"), ("not found", "missing.ogg"), ("too short", "beep.wav"),
                   ("unreadable", "broken.ogg")}
    # Packages not extracted are skipped silently.
    assert all(c.package == "pkgb" for c in select_noise_files({"pkgb": tree / "pkgb"}, RECIPE_T))


def test_activity():
    x = np.concatenate([np.zeros(SR), ambience(2, 1), np.zeros(SR // 2), ambience(2, 2), np.zeros(SR // 4)])
    act = activity(x, SR)
    assert act.start_s == pytest.approx(1.0, abs=0.06) and act.end_s == pytest.approx(5.5, abs=0.06)
    assert act.longest_silence_s == pytest.approx(0.5, abs=0.1)
    assert activity(np.zeros(SR), SR) == Activity(0.0, 0.0, 1.0)


def test_content_groups():
    ov = [Overlap("a", "b", 0.0, 1.0, 0.5), Overlap("b", "c", 0.0, 1.0, 0.5), Overlap("x", "zz", 0.0, 1.0, 0.5)]
    groups = content_groups(["a", "b", "c", "d"], ov, {"a": 3.0, "b": 5.0, "c": 5.0, "d": 1.0})
    assert groups == {"a": "b", "b": "b", "c": "b", "d": "d"}


# --------------------------------------------------------------------------- the bank


def test_bank_clips_and_exclusions(bank, tree):
    assert {c.noise_id for c in bank.clips()} == KEPT
    assert bank.kinds() == ["forest", "machine", "rain", "water", "wind"]
    assert bank.versions == {"pkga": "", "pkgb": "2.0-1"}
    why = {Path(e.rel_path).name: e for e in bank.excluded}
    assert why["gappy.wav"].kind == "silent stretch"
    assert {why["drizzle.ogg"].kind, why["rain_loop.wav"].kind} == {"duplicate"}
    assert why["drizzle.ogg"].duplicate_of == why["rain_loop.wav"].duplicate_of == nid("pkga", f"{A}/ambient/rain")
    assert [Path(s.path).name for s in bank.skipped] == ["broken.ogg"]
    # The river's trailing second of silence is trimmed.
    river = nid("pkgb", f"{B}/river")
    assert bank.clip(river).duration_s == pytest.approx(6.0, abs=0.06)
    x = bank.load(river)
    assert x.dtype == np.float32 and x.size == pytest.approx(6 * SR, abs=500)
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    meta = bank.meta(nid("pkga", f"{A}/ambient/rain"))
    assert meta["package"] == "pkga" and meta["licence"] == "usr/share/doc/pkga/copyright"
    assert meta["path"] == f"{A}/ambient/rain.ogg" and len(meta["sha256"]) == 64
    # Manifest and report in the root folder.
    clips = pd.read_csv(tree / "clips.csv")
    assert set(clips["noise_id"]) == KEPT and set(clips["split"]) <= {"train", "test"}
    report = pd.read_csv(tree / "dedup_report.csv")
    assert sorted(report["kind"]) == sorted(["duplicate", "duplicate", "link", "not found", "silent stretch",
                                             "too short", "unreadable"])


def test_partial_overlap_is_grouped(bank):
    wind, gust = nid("pkga", f"{A}/loops/wind"), nid("pkga", f"{A}/loops/wind_gust")
    assert bank.groups() == {wind: [wind, gust]}
    assert bank.clip(wind).split == bank.clip(gust).split
    assert len(bank.overlaps) == 1 and 1.0 < bank.overlaps[0].overlap_s < 2.1


def test_splits_stratified_and_disjoint(bank):
    by_split = {s: {c.noise_id for c in bank.clips(s)} for s in ("train", "val", "test")}
    assert by_split["train"].isdisjoint(by_split["test"]) and not by_split["val"]
    assert by_split["train"] | by_split["test"] == KEPT
    for kind in ("forest", "water", "machine"):  # kinds of two or more groups
        assert {c.split for c in bank.clips() if c.kind == kind} == {"train", "test"}


def test_no_content_straddles_the_splits(bank, tree):
    """Fingerprints of the audio as loaded (not the bank's own, not names) never match across splits,
    and every file left out as a copy matches a clip of the bank."""
    fps = {c.noise_id: fingerprint(bank.load(c.noise_id), SR) for c in bank.clips()}
    for o in find_overlaps(fps, 0.5):
        assert bank.clip(o.a).split == bank.clip(o.b).split, o
    assert noise_overlap(bank) == 0
    for e in bank.excluded:
        if e.kind == "duplicate":
            fp = fingerprint(read_audio(tree / e.package / e.rel_path, SR), SR)
            hits = find_overlaps({"copy": fp, "kept": fps[e.duplicate_of]}, 2.0)
            assert hits and hits[0].match_fraction > 0.8


def test_leaking_split_is_detected(bank):
    wind, gust = nid("pkga", f"{A}/loops/wind"), nid("pkga", f"{A}/loops/wind_gust")
    leaky = copy.copy(bank)  # a shallow copy is enough: only the split of one clip changes
    leaky._clips = dict(bank._clips)
    other = "test" if bank.clip(gust).split == "train" else "train"
    leaky._clips[gust] = dataclasses.replace(bank.clip(gust), split=other)
    pairs = noise_overlap_pairs(leaky)
    assert noise_overlap(leaky) == 1 and {pairs[0].a, pairs[0].b} == {wind, gust}


def test_rebuild_is_stable_and_cached(bank, tree, monkeypatch):
    import datasets.noise.debian as dn

    def fail(*a, **k):
        raise AssertionError("decoded a file although its fingerprint and activity are cached")

    monkeypatch.setattr(dn, "read_audio", fail)
    monkeypatch.setattr("datasets.dedup.read_audio", fail)
    with pytest.warns(UserWarning, match="broken.ogg"):
        again = DebianNoiseBank(Protocol(), root=tree, recipe=RECIPE_T, fetch=False, progress=False)
    assert again.identity() == bank.identity()
    assert [(c.noise_id, c.split) for c in again.clips()] == [(c.noise_id, c.split) for c in bank.clips()]


def test_fetch_only_when_missing(tree, tmp_path, monkeypatch):
    """With fetch=True, extracted trees are used as they are: no apt-get needed."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    root = tmp_path / "root"
    shutil.copytree(tree / "pkga", root / "pkga", symlinks=True)
    recipe = [e for e in RECIPE_T if e.package == "pkga"]
    bank = DebianNoiseBank(Protocol(), root=root, recipe=recipe, progress=False)
    assert {c.kind for c in bank.clips()} == {"forest", "rain", "wind"}
    with pytest.raises(DebianFetchError, match="apt-get"):
        DebianNoiseBank(Protocol(), root=root, recipe=RECIPE_T, progress=False)


@pytest.mark.filterwarnings("ignore:skipping .*broken.ogg")
def test_missing_package_without_fetch(tree, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tree / "pkgb", root / "pkgb")
    with pytest.warns(UserWarning, match="leaving out package pkga"):
        bank = DebianNoiseBank(Protocol(), root=root, recipe=RECIPE_T, fetch=False, progress=False)
    assert set(bank.failed_packages) == {"pkga"}
    assert nid("pkgb", f"{B}/rain_loop") in {c.noise_id for c in bank.clips()}  # its original is gone
    with pytest.raises(FileNotFoundError, match="no extracted package"):
        DebianNoiseBank(Protocol(), root=tmp_path / "nothing", recipe=RECIPE_T, fetch=False, progress=False)


def test_no_usable_file(tmp_path):
    root = tmp_path / "root"
    write_audio(root / "pkgc/usr/share/c/beep.wav", ambience(1, 1), fmt="WAV")
    with pytest.raises(NoiseBankError, match="no usable recording"):
        DebianNoiseBank(Protocol(), root=root, recipe=[RecipeEntry("pkgc", "usr/share/c/*.wav", "fire")],
                        fetch=False, progress=False)


def test_reuse_debs(tmp_path):
    src = tmp_path / "music" / "debs"
    src.mkdir(parents=True)
    (src / "pkgc_1.0-1_all.deb").write_bytes(b"deb")
    (src / "pkgd_2.0_all.deb").write_bytes(b"deb")
    dest = tmp_path / "noise"
    (dest / "pkgd" / "usr").mkdir(parents=True)  # already extracted: nothing to link
    assert reuse_debs(["pkgc", "pkgd", "pkge"], dest, [tmp_path / "absent", src]) == ["pkgc"]
    assert (dest / "debs" / "pkgc_1.0-1_all.deb").read_bytes() == b"deb"
    assert os.stat(dest / "debs" / "pkgc_1.0-1_all.deb").st_ino == os.stat(src / "pkgc_1.0-1_all.deb").st_ino
    assert reuse_debs(["pkgc"], dest, [src]) == []  # already there


# --------------------------------------------------------------------------- combined banks


@pytest.fixture(scope="module")
def synth():
    return SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=3.0, kinds=("pink", "hum"))


def test_combined_bank(bank, synth):
    both = CombinedNoiseBank([synth, bank])
    assert both.name == "synth+debian"
    ids = {c.noise_id for c in both.clips()}
    assert ids == {c.noise_id for c in synth.clips()} | KEPT
    for member in (synth, bank):
        for c in member.clips():
            assert both.clip(c.noise_id) == c and both.member(c.noise_id) is member
        for split in ("train", "test"):
            assert {c.noise_id for c in both.clips(split)} >= {c.noise_id for c in member.clips(split)}
    assert both.kinds() == sorted(set(synth.kinds()) | set(bank.kinds()))
    assert both.identity() == {"bank": "combined-noise", "members": [synth.identity(), bank.identity()]}
    for noise_id in ("synth-noise/hum-01", nid("pkgb", f"{B}/machine_2")):
        x = both.load(noise_id)
        assert x.tobytes() == both.member(noise_id).load(noise_id).tobytes()
    assert noise_overlap(both) == 0


def test_combined_bank_errors(bank, synth):
    with pytest.raises(NoiseBankError, match="two or more banks"):
        CombinedNoiseBank([synth])
    with pytest.raises(NoiseBankError, match="is in both bank 'synth' and bank 'synth'"):
        CombinedNoiseBank([synth, SynthNoiseBank(Protocol(), n_per_kind=1, clip_s=3.0, kinds=("pink",))])
    with pytest.raises(NoiseBankError, match="different protocols"):
        CombinedNoiseBank([SynthNoiseBank(Protocol(sample_rate=16000), n_per_kind=1, clip_s=3.0), bank])


@pytest.mark.filterwarnings("ignore:skipping .*broken.ogg")
def test_open_noise_bank_specs(tree):
    debian = {"root": tree, "recipe": RECIPE_T, "fetch": False, "progress": False}
    assert isinstance(open_noise_bank("debian", Protocol(), **debian), DebianNoiseBank)
    both = open_noise_bank("synth+debian", Protocol(), debian=debian,
                           synth={"n_per_kind": 1, "clip_s": 3.0, "kinds": ("white",)})
    assert isinstance(both, CombinedNoiseBank) and [b.name for b in both.banks] == ["synth", "debian"]
    assert len(both.clips()) == 1 + len(KEPT)
    for spec, match in (("synth+", "empty part"), ("synth+synth", "named twice"),
                        ("synth+/no/such/dir", "expected 'synth', 'debian' or an existing folder"),
                        ("rain", "expected 'synth', 'debian' or an existing folder")):
        with pytest.raises(NoiseBankError, match=match):
            open_noise_bank(spec, Protocol())
    with pytest.raises(NoiseBankError, match=r"options \['folder'\] name no part"):
        open_noise_bank("synth+debian", Protocol(), folder={})
    with pytest.raises(NoiseBankError, match="must be dicts"):
        open_noise_bank("synth+debian", Protocol(), debian=3)
