"""Distractors: the debian-distractors recipe on fake package trees, and the assembled set kept apart
from the corpus by content (no distractor shares audio with any corpus track; none is ever queried
or trained on)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datasets.corpora.debian_distractors import DISTRACTOR_SPLIT, DebianDistractorCorpus, PackageRule
from datasets.corpora.debian_music import DebianMusicCorpus
from datasets.dedup import find_overlaps
from datasets.distractors import EXTRA_SOURCE, FILL_SOURCE, REAL_SOURCE, assemble_distractors, distractor_segments
from datasets.overlap import track_fingerprints
from datasets.protocol import Protocol
from tests.helpers import music_like

SR = 8000
PROTOCOL = Protocol(hop_s=0.25)


def _ogg(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR, format="OGG", subtype="VORBIS")


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A corpus package (four tracks) and three distractor packages: one re-encodes a corpus
    track, one keeps its music in a .pk3 archive, one has an extension-less Ogg file."""
    corpus_root, dist_root = tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("distractors")
    tracks = [music_like(50 + 2 * i, seed=100 + i) for i in range(4)]
    for i, audio in enumerate(tracks):
        _ogg(corpus_root / "game-music" / "usr/share/games/game/music" / f"t{i}.ogg", audio)
    copy_of = tracks[2]
    _ogg(dist_root / "pkg-plain" / "usr/share/games/plain/music" / "copy.ogg", 0.7 * copy_of)
    _ogg(dist_root / "pkg-plain" / "usr/share/games/plain/music" / "own.ogg", music_like(60, seed=200))
    _ogg(dist_root / "pkg-plain" / "usr/share/games/plain/sounds" / "fx.ogg", music_like(50, seed=201))
    member = dist_root / "member.ogg"
    _ogg(member, music_like(55, seed=202))
    pk3 = dist_root / "pkg-zip" / "usr/share/games/zip/base" / "0music.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as zf:
        zf.write(member, "music/inside.ogg")
        zf.writestr("maps/readme.txt", "not audio")
    member.unlink()
    _ogg(dist_root / "pkg-magic" / "usr/share/games/magic/music" / "noext.ogg", music_like(48, seed=203))
    (dist_root / "pkg-magic" / "usr/share/games/magic/music" / "noext.ogg").rename(
        dist_root / "pkg-magic" / "usr/share/games/magic/music" / "noext")
    return corpus_root, dist_root, copy_of


EXTRA_RULES = {"pkg-themes": PackageRule(words=("themes",)), "pkg-songs": PackageRule(files=("*/song.ogg",))}


@pytest.fixture(scope="module")
def extra_root(tmp_path_factory) -> Path:
    """The second corpus's packages: music under themes/ (one track re-encodes the first corpus's
    own.ogg), and a song folder with its guitar stem beside it."""
    root = tmp_path_factory.mktemp("extra")
    _ogg(root / "pkg-themes" / "usr/share/tg/themes" / "aztec.ogg", music_like(52, seed=300))
    _ogg(root / "pkg-themes" / "usr/share/tg/themes" / "again.ogg", 0.8 * music_like(60, seed=200))
    _ogg(root / "pkg-themes" / "usr/share/tg/music" / "elsewhere.ogg", music_like(50, seed=301))
    _ogg(root / "pkg-songs" / "usr/share/songs/tune" / "song.ogg", music_like(49, seed=302))
    _ogg(root / "pkg-songs" / "usr/share/songs/tune" / "guitar.ogg", music_like(49, seed=303))
    return root


RULES = {"pkg-plain": PackageRule(), "pkg-zip": PackageRule(archives=("**/*.pk3",)),
         "pkg-magic": PackageRule(magic_ogg=True)}


def _corpus(root: Path) -> DebianMusicCorpus:
    return DebianMusicCorpus(PROTOCOL, root=root, packages=["game-music"], fetch=False, progress=False)


def test_recipe_finds_archive_members_and_extensionless_ogg(trees):
    _, dist_root, _ = trees
    dist = DebianDistractorCorpus(PROTOCOL, root=dist_root, packages=RULES, fetch=False, progress=False)
    ids = {t.track_id for t in dist.tracks()}
    assert any(i.startswith("pkg-zip/") and i.endswith("/music/inside") for i in ids), ids
    assert any(i.startswith("pkg-magic/") and i.endswith("/music/noext") for i in ids), ids
    assert not any("sounds/fx" in i for i in ids)  # outside a music folder
    assert {dist.split(i) for i in ids} == {DISTRACTOR_SPLIT}
    for split in ("train", "val", "test"):
        assert dist.tracks(split) == []  # never a query track, never a training track
    assert all(len(dist.load(i)) > 45 * SR for i in ids)


def test_assembled_distractors_share_no_audio_with_the_corpus(trees):
    corpus_root, dist_root, _ = trees
    corpus = _corpus(corpus_root)
    dist = assemble_distractors(corpus, need_segments=10, seed=0, fill=False, real_root=dist_root, fetch=False,
                                progress=False, packages=RULES)
    music = dist.sources[REAL_SOURCE]
    copy_id = next(t.track_id for t in music.tracks() if t.track_id.endswith("/music/copy"))
    # the re-encoded corpus track is left out, naming the corpus track it copies
    dropped = dist.dropped.set_index("track_id")
    assert copy_id in dropped.index
    assert dropped.loc[copy_id, "shares_with"].endswith("/music/t2")
    kept = set(dist.tracks["track_id"])
    assert copy_id not in kept and len(kept) == len(music.tracks()) - 1
    # by content: no kept distractor shares 20 s with any corpus track, in any split
    fps = {**{f"c/{k}": v for k, v in track_fingerprints(corpus).items()},
           **{f"d/{k}": v for k, v in track_fingerprints(music).items() if k in kept}}
    crossing = [o for o in find_overlaps(fps, 20.0) if o.a[0] != o.b[0]]
    assert crossing == []
    assert dist.tracks["real"].all() and dist.real_segments == dist.segments


def test_distractor_keys_never_equal_a_corpus_track_id(trees):
    corpus_root, dist_root, _ = trees
    corpus = _corpus(corpus_root)
    dist = assemble_distractors(corpus, need_segments=10, seed=0, fill=False, real_root=dist_root, fetch=False,
                                progress=False, packages=RULES)
    table = distractor_segments(dist, PROTOCOL, dist.segments)
    assert len(table) == dist.segments
    assert not set(table["key"]) & {t.track_id for t in corpus.tracks()}
    assert table["key"].str.startswith(f"{REAL_SOURCE}:").all()
    # the order is fixed by the seed and a prefix is a prefix
    again = distractor_segments(dist, PROTOCOL, 100)
    assert again.equals(table.iloc[:100].reset_index(drop=True))


def test_synthetic_fill_covers_the_remainder_and_is_labelled(trees):
    corpus_root, _, _ = trees
    corpus = _corpus(corpus_root)
    dist = assemble_distractors(corpus, need_segments=900, seed=0, real=False, progress=False)
    assert set(dist.tracks["source"]) == {FILL_SOURCE}
    assert not dist.tracks["real"].any() and dist.real_segments == 0
    assert dist.segments >= 900
    # the fill's generator seed is never the corpus's own
    assert dist.sources[FILL_SOURCE].seed != 0


def test_too_few_distractors_is_a_clear_error(trees):
    corpus_root, _, _ = trees
    with pytest.raises(ValueError, match="segments available, 5000 asked"):
        assemble_distractors(_corpus(corpus_root), need_segments=5000, real=False, fill=False, progress=False)


def test_without_the_packages_the_synthetic_fill_stands_in_with_a_warning(trees, tmp_path):
    corpus_root, _, _ = trees
    with pytest.warns(UserWarning, match="no real-music distractors"):
        dist = assemble_distractors(_corpus(corpus_root), need_segments=300, real_root=tmp_path / "empty",
                                    fetch=False, progress=False)
    assert set(dist.tracks["source"]) == {FILL_SOURCE} and dist.real_segments == 0
    assert dist.notes and "unavailable" in dist.notes[0]


def test_extra_corpus_follows_the_first_only_when_it_falls_short(trees, extra_root):
    corpus_root, dist_root, _ = trees
    corpus = _corpus(corpus_root)
    kw = dict(seed=0, fill=False, real_root=dist_root, fetch=False, progress=False, packages=RULES,
              extra_root=extra_root, extra_packages=EXTRA_RULES)
    first = assemble_distractors(corpus, need_segments=10, **kw)
    assert set(first.sources) == {REAL_SOURCE}  # a DB the first corpus fills never reads the second
    both = assemble_distractors(corpus, need_segments=first.segments + 1, **kw)
    assert set(both.sources) == {REAL_SOURCE, EXTRA_SOURCE}
    # the first corpus's order is unchanged and the second comes after it
    assert both.tracks.iloc[:len(first.tracks)].equals(first.tracks)
    more = both.tracks.iloc[len(first.tracks):]
    assert (more["source"] == EXTRA_SOURCE).all() and more["real"].all()
    # the rules: folder words or file patterns, never the guitar stem or music outside themes/
    assert {t.split("/")[-1] for t in more["track_id"]} == {"aztec", "song"}
    # the re-encoded copy of the first corpus's own.ogg is left out, naming the track it copies
    again = both.dropped.set_index("track_id").loc["pkg-themes/usr/share/tg/themes/again"]
    assert again["source"] == EXTRA_SOURCE
    assert again["shares_with"].startswith(f"{REAL_SOURCE}:pkg-plain/") and again["shares_with"].endswith("/own")
    # every real segment, when asked for
    every = assemble_distractors(corpus, need_segments=10, all_real=True, **kw)
    assert every.tracks.equals(both.tracks)
