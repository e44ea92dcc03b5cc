"""The ``debian-distractors`` corpus: more free-licensed game soundtracks, for the DB only.

The same recipe as ``debian-music`` (:mod:`datasets.corpora.debian_music`: ``apt-get download``
+ ``dpkg -x``, music folders, at least 45 s, sped-up copies and duplicates left out, a
manifest with each track's package, version and licence file), over the packages of
:data:`DISTRACTOR_PACKAGES`, with the additions a package may need (:class:`PackageRule`):

- other folder words than "music" (a package that keeps its music in ``tunes/``);
- audio inside zip archives (Quake-style ``.pk3``): members with an audio extension are
  unpacked once into ``<tree>/.unpacked/<archive path>/<member path>``;
- Ogg files without an extension (found by their ``OggS`` header): linked once as
  ``<tree>/.unpacked/<path>.ogg``;
- tracker modules (MOD, XM, IT, S3M, STM): rendered once with libopenmpt
  (:mod:`datasets.corpora.tracker_modules`) to ``<tree>/.unpacked/<path>.flac``.

Every track is in the split ``"distractor"``: none is ever a query or a training item.
Deduplication against the corpus whose queries are searched is the job of
:mod:`datasets.distractors`, which assembles a scaling run's distractor set.
The packages and their licences are listed in ``docs/distractors.md``.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from datasets.audio_io import AUDIO_EXTENSIONS
from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .debian_music import MIN_DURATION_S, MIN_OVERLAP_S, MUSIC_DIR_WORDS, DebianMusicCorpus
from .tracker_modules import MODULE_RENDERS, TrackerRenderError, render_modules

DISTRACTOR_SPLIT = "distractor"
UNPACKED = ".unpacked"
UNPACK_MARKER = ".flowhash-unpacked.json"


@dataclass(frozen=True)
class PackageRule:
    """How a package's music is found: folder words (or file patterns), zip archives to unpack,
    extension-less Ogg files, tracker modules to render."""

    words: tuple[str, ...] = MUSIC_DIR_WORDS
    archives: tuple[str, ...] = ()  # glob patterns (relative to the tree) of zip archives holding music
    magic_ogg: bool = False
    files: tuple[str, ...] = ()  # fnmatch patterns of the music files' lower-case paths; replace ``words``
    modules: bool = False  # render tracker modules (.tracker_modules) to <tree>/.unpacked/<path>.flac


#: Debian bookworm packages whose music makes up the distractors (licence: each package's
#: ``usr/share/doc/<package>/copyright``; the survey in docs/distractor-survey.md measured them).
DISTRACTOR_PACKAGES: dict[str, PackageRule] = {
    "warzone2100-music": PackageRule(),
    "ufoai-music": PackageRule(archives=("**/*.pk3",)),
    "planetblupi-music-ogg": PackageRule(),
    "wesnoth-1.16-music": PackageRule(),
    "naev-data": PackageRule(),
    "widelands-data": PackageRule(),
    "nexuiz-music": PackageRule(archives=("**/*.pk3",)),
    "blobwars-data": PackageRule(magic_ogg=True),
    "berusky2-data": PackageRule(),
    "colobot-common-sounds": PackageRule(),
    "trackballs-data": PackageRule(),
    "warmux-data": PackageRule(),
    "wizznic-data": PackageRule(),
    "openclonk-data": PackageRule(),
    "fillets-ng-data": PackageRule(),
    "davegnukem-data": PackageRule(),
    "hyperrogue-music": PackageRule(),
    "enigma-data": PackageRule(),
    "asc-music": PackageRule(),
    "ardentryst": PackageRule(),
    "freecol": PackageRule(),
    "lordsawar-data": PackageRule(),
    "xmoto-data": PackageRule(),
    "miceamaze": PackageRule(),
    "amoebax-data": PackageRule(),
    "extremetuxracer-data": PackageRule(),
    "pathological": PackageRule(),
    "gigalomania-data": PackageRule(),
}


#: The packages of the survey (docs/distractor-survey.md) that DISTRACTOR_PACKAGES leaves out, each
#: with the rule that finds the files the survey judged music: ``debian-distractors-extra``, the real
#: music a DB takes beyond the first corpus, with the survey's tracker-module packages (rendered).
#: Left out: drascula-music (its licence forbids charging for the game), blockattack and tuxtype-data
#: (their music is a byte copy of another package's).
EXTRA_PACKAGES: dict[str, PackageRule] = {
    "0ad-data": PackageRule(archives=("**/public.zip",)),
    "redeclipse-data": PackageRule(files=("*/sounds/music/track_*.ogg", "*/sounds/theme.ogg", "*/sounds/original.ogg",
                                          "*/maps/tonatiuh.ogg")),
    "pushover-data": PackageRule(words=("themes",)),
    "asterisk-moh-opsound-wav": PackageRule(words=("moh",)),
    "zaz-data": PackageRule(files=("*/zaz/mus*.ogg",)),
    "freedink-data": PackageRule(words=("sound",)),
    "wordwarvi-sound": PackageRule(words=("sounds",)),
    "fretsonfire-songs-sectoid": PackageRule(files=("*/song.ogg",)),  # not the guitar stems
    "fretsonfire-songs-muldjord": PackageRule(files=("*/song.ogg",)),
    "adonthell-data": PackageRule(words=("audio",)),
    "frozen-bubble-data": PackageRule(files=("*/snd/*zik*.ogg",)),
    "btanks-data": PackageRule(words=("tunes",)),
    "openarena-088-data": PackageRule(archives=("**/*.pk3",)),
    "freeorion-data": PackageRule(files=("*/sound/artificial_intelligence_v3.ogg",)),
    "noiz2sa-data": PackageRule(words=("sounds",)),
    "hex-a-hop-data": PackageRule(files=("*/music-*.ogg",)),
    "neverball-common": PackageRule(words=("bgm",)),
    "powermanga-data": PackageRule(files=("*/music_*.ogg",)),
    "mrrescue": PackageRule(words=("sfx",), archives=("**/*.love",)),
    "torcs-data": PackageRule(),
    "pinball-data": PackageRule(files=("*/pinball/professor/*.ogg", "*/pinball/tux/*.ogg")),
    "gamine-data": PackageRule(files=("*/sounds/bachjs*.ogg",)),
    "plee-the-bear-data": PackageRule(),
    "tuxmath-data": PackageRule(words=("sounds",), modules=True),
    "angrydd": PackageRule(),
    "mu-cade-data": PackageRule(),
    "pax-britannica-data": PackageRule(files=("*/audio/music.ogg",)),
    "seahorse-adventures": PackageRule(),
    "tumiki-fighters-data": PackageRule(words=("sounds",)),
    "parsec47-data": PackageRule(words=("sounds",)),
    "torus-trooper-data": PackageRule(),
    "renpy-demo": PackageRule(files=("*/demo/game/*.ogg",)),
    "mazeofgalious-data": PackageRule(words=("sound",)),
    "titanion-data": PackageRule(),
    "gunroar-data": PackageRule(),
    "searchandrescue-data": PackageRule(),
    "brainparty-data": PackageRule(files=("*/electricity.ogg",)),
    "a7xpg-data": PackageRule(words=("sounds",)),
    "hannah-data": PackageRule(files=("*/bgm1.ogg",)),
    "orbital-eunuchs-sniper-data": PackageRule(files=("*/oes.ogg",)),
    "cube2-data": PackageRule(),
    "funnyboat": PackageRule(files=("*/jdruid-trip_on_the_funny_boat.ogg",)),
    "rrootage-data": PackageRule(words=("sounds",)),
    "pink-pony-data": PackageRule(),
    "glob2-data": PackageRule(words=("zik",)),
    "abe-data": PackageRule(words=("sounds",)),
    "csmash-demosong": PackageRule(files=("*/csmash/*.ogg",)),
    "epiphany-data": PackageRule(words=("sfx",)),
    "caveexpress-data": PackageRule(files=("*/sounds/music-*.ogg",)),
    "freeciv-data": PackageRule(),
    "holotz-castle-data": PackageRule(files=("*/sound/hcmaintitle.wav",)),  # not the slowed copies
    "raincat-data": PackageRule(),
    "pangzero": PackageRule(files=("*.mp3",)),
    "solarwolf": PackageRule(modules=True),
    "bumprace-data": PackageRule(words=("sound",)),
    "freedroid-data": PackageRule(words=("sound",), modules=True),
    **{p: PackageRule(files=MODULE_RENDERS, modules=True) for p in (
        "ironseed-data", "tecnoballz-data", "pekka-kana-2-data", "heroes-sound-tracks", "pingus-data", "rafkill-data",
        "pachi-data", "biniax2-data", "open-invaders-data", "bomberclone-data", "madbomber-data", "gl-117-data",
        "circuslinux-data", "njam-data", "ri-li-data", "tomatoes-data", "flobopuyo", "criticalmass-data",
        "fb-music-high", "monsterz-data", "ballz-data", "ceferino-data", "cuyo-data")},
}


def unpack_archives(tree: Path, patterns: Sequence[str]) -> int:
    """Unpack the audio members of the zip archives matching ``patterns`` under ``tree`` into
    ``tree/.unpacked/<archive>/<member>``; return how many were unpacked. An archive already
    unpacked (its marker is there) is left alone; a member path that would leave its folder
    is skipped."""
    n = 0
    for pattern in patterns:
        for archive in sorted(tree.glob(pattern)):
            if UNPACKED in archive.relative_to(tree).parts or not zipfile.is_zipfile(archive):
                continue
            dest = tree / UNPACKED / archive.relative_to(tree)
            if (dest / UNPACK_MARKER).is_file():
                continue
            members = []
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    member = PurePosixPath(info.filename)
                    if info.is_dir() or member.suffix.lower() not in AUDIO_EXTENSIONS or ".." in member.parts \
                            or member.is_absolute():
                        continue
                    zf.extract(info, dest)
                    members.append(info.filename)
            dest.mkdir(parents=True, exist_ok=True)
            (dest / UNPACK_MARKER).write_text(json.dumps({"archive": archive.name, "members": members}) + "\n")
            n += len(members)
    return n


def link_magic_ogg(tree: Path) -> int:
    """Link every extension-less file of ``tree`` that starts with an Ogg header as
    ``tree/.unpacked/<path>.ogg`` (a hard link, or a copy across file systems); return how many."""
    n = 0
    for p in sorted(tree.rglob("*")):
        if p.suffix or not p.is_file() or p.is_symlink() or UNPACKED in p.relative_to(tree).parts:
            continue
        with open(p, "rb") as fh:
            if fh.read(4) != b"OggS":
                continue
        dest = tree / UNPACKED / (p.relative_to(tree).as_posix() + ".ogg")
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, dest)
        except OSError:
            dest.write_bytes(p.read_bytes())
        n += 1
    return n


class DebianDistractorCorpus(DebianMusicCorpus):
    """Music of the :data:`DISTRACTOR_PACKAGES`, every track in the ``"distractor"`` split.

    ``root`` defaults to ``datasets.cache.cache_dir("debian-distractors")``; ``fetch=False``
    uses the trees already extracted there; ``packages`` (default the recipe's, ``recipe_packages``)
    maps each package to its rule, or names packages that take the recipe's rule. See
    :class:`DebianMusicCorpus` for the rest.
    """

    name = "debian-distractors"
    recipe_version = "distractors-1"
    recipe_packages: Mapping[str, PackageRule] = DISTRACTOR_PACKAGES

    def __init__(self, protocol: Protocol = Protocol(), root: Path | None = None,
                 packages: Mapping[str, PackageRule] | Sequence[str] | None = None, fetch: bool = True,
                 progress: bool = True, min_duration_s: float = MIN_DURATION_S,
                 min_overlap_s: float = MIN_OVERLAP_S, workers: int = 2) -> None:
        packages = self.recipe_packages if packages is None else packages
        self.rules = (dict(packages) if isinstance(packages, Mapping)
                      else {p: self.recipe_packages.get(p, PackageRule()) for p in packages})
        super().__init__(protocol, DEFAULT_FRACTIONS, root=root, packages=tuple(self.rules), fetch=fetch,
                         progress=progress, min_duration_s=min_duration_s, min_overlap_s=min_overlap_s,
                         workers=workers)

    def split(self, track_id: str) -> str:
        """Always ``"distractor"``: these tracks only ever enter the DB."""
        return DISTRACTOR_SPLIT

    def _prepare_tree(self, package: str, tree: Path) -> None:
        """Unpack archive members and link extension-less Ogg files, as the package's rule says."""
        rule = self.rules.get(package, PackageRule())
        if rule.archives:
            unpack_archives(tree, rule.archives)
        if rule.magic_ogg:
            link_magic_ogg(tree)
        if rule.modules:
            try:
                render_modules(tree, tree / UNPACKED, skip=(UNPACKED,))
            except TrackerRenderError as exc:
                warnings.warn(f"{self.name}: {package}: its tracker modules are left out ({exc})", stacklevel=2)

    def _music_words(self, package: str) -> Sequence[str]:
        """The package rule's folder words."""
        return self.rules.get(package, PackageRule()).words

    def _music_files(self, package: str) -> Sequence[str]:
        """The package rule's file patterns."""
        return self.rules.get(package, PackageRule()).files


class DebianDistractorExtraCorpus(DebianDistractorCorpus):
    """Music of the :data:`EXTRA_PACKAGES`: the same recipe as :class:`DebianDistractorCorpus`, in
    its own cache folder (``cache_dir("debian-distractors-extra")`` by default), so that a DB that
    needs more real music than the first corpus holds takes this one after it, and a smaller DB
    stays what it was."""

    name = "debian-distractors-extra"
    recipe_version = "distractors-extra-1"
    recipe_packages = EXTRA_PACKAGES
