"""The ``debian`` noise bank: real ambience recordings from Debian game data packages.

Recipe (the packages come the way :mod:`datasets.corpora.debian_music` fetches them):

1. **Fetch** the packages of :data:`RECIPE` with ``apt-get download`` + ``dpkg -x``
   (:func:`datasets.debian_packages.fetch_packages`) into ``<root>/debs/`` and ``<root>/<PKG>/``;
   a ``.deb`` the debian-music cache already holds is linked instead of downloaded again.
   Nothing is fetched for a package whose extracted tree is already under ``root``.
2. **Select** the files :data:`RECIPE` names (a path or an ``fnmatch`` pattern inside a
   package, and a kind), chosen by name from each package's ambience / environment sounds:
   music and short one-shot effects are not in it. Symbolic links (megaglest's tilesets link
   each other's files) are passed over. Silence at either end of a file is trimmed (frames
   :data:`SILENCE_DB` under the file's RMS); files then shorter than :data:`MIN_DURATION_S`,
   or holding a silent stretch longer than :data:`MAX_SILENT_S` inside, are left out (a
   query's noise excerpt must never be silent).
3. **Deduplicate by content**: every file is fingerprinted (:mod:`datasets.dedup`, cached by
   the file's sha256) and pairs sharing at least ``min_overlap_s`` of audio are found with
   :func:`datasets.dedup.find_overlaps`. A clip that shares ``duplicate_fraction`` of its
   length with a longer one is a copy and is dropped; clips that share less (a loop cut
   from a longer bed) stay, but in one group, and a group is always in one split. So no
   recording appears in both train and test, whatever the file names say.
4. **Split** train/test stratified by kind (:data:`datasets.noise.bank.DEFAULT_SPLIT_FRACTIONS`),
   groups as whole items, and write ``clips.csv`` (one row per clip: package, version,
   path, licence file, kind, duration, split, group, sha256) and ``dedup_report.csv``
   (every file left out and why) into ``root``.

Clip ids are ``"debian-noise/<package>/<path inside the package without extension>"``.
Clips load as mono float32 at the protocol rate with unit RMS, like every noise bank.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from datasets.audio_io import AUDIO_EXTENSIONS, AudioReadError, audio_info, read_audio, warn_skip
from datasets.cache import atomic_path, cache_dir, cache_root
from datasets.corpora.corpus import Skipped
from datasets.corpora.debian_music import Candidate, Exclusion
from datasets.debian_packages import (
    fetch_packages,
    find_deb,
    find_extracted,
    is_extracted,
    licence_path,
    package_version,
)
from datasets.dedup import (
    DEFAULT_PARAMS,
    Fingerprint,
    FingerprintParams,
    Overlap,
    content_groups,
    deduplicate,
    find_overlaps,
    fingerprint_file,
    shared_groups,
)
from datasets.protocol import Protocol

from .bank import DEFAULT_SPLIT_FRACTIONS, NoiseBank, NoiseBankError, NoiseClip, _rms_normalise

#: Kinds of real noise, each a family of recordings:
#: forest: woodland and wildlife ambience (birds, insects, frogs, forest day and night beds);
#: rain; wind (wind, and steady desert wind beds); water (rivers, waterfalls, waves, drips);
#: fire (camp fires, furnaces); machine (factories, engines, machinery, mills, hum);
#: crowd (taverns, restaurants, markets, stadium and city murmur).
KINDS: tuple[str, ...] = ("forest", "rain", "wind", "water", "fire", "machine", "crowd")


@dataclass(frozen=True)
class RecipeEntry:
    """Files of one package that the bank uses: a path inside the package (``fnmatch``
    wildcards allowed) and the kind of noise they hold."""

    package: str
    pattern: str
    kind: str


def _entries(package: str, prefix: str, kind: str, *names: str) -> tuple[RecipeEntry, ...]:
    return tuple(RecipeEntry(package, f"{prefix}/{n}", kind) for n in names)


_MG = "usr/share/games/megaglest/tilesets"
_S3D = "usr/share/games/scorched3d/data/globalmods"
_FLARE = "usr/share/games/flare/mods"
_STK = "usr/share/games/supertuxkart/data"
_UH = "usr/share/unknown-horizons/content/audio/sounds"
_WES = "usr/share/games/wesnoth/1.16/data/core/sounds/ambient"
_MT = "usr/share/games/minetest/games/minetest_game/mods"
_LC = "usr/share/games/lincity-ng/sounds"

#: The files of the bank, chosen by path and name (ambience, environment and loop sounds of
#: each package; a few ambiguous names were checked on a spectrogram: megaglest's desert
#: "day" and lugaru's "DesertAmbient" are steady wind beds, megaglest's desert "night" and
#: mediterranean "desertday" are insects).
RECIPE: tuple[RecipeEntry, ...] = (
    # megaglest-data: tileset ambience (other tilesets link these files)
    *_entries("megaglest-data", _MG, "forest", "autumn/sounds/nightime.ogg", "autumn/sounds/sunny_day.ogg",
              "birch_forest/sounds/day.ogg", "birch_forest/sounds/night.ogg", "dark_forest/sounds/day.ogg",
              "dark_forest/sounds/night.ogg", "desert2/sounds/night.ogg", "fernland/sounds/day.ogg",
              "fernland/sounds/night.ogg", "mediterran/sounds/desertday.ogg", "mediterran/sounds/night.ogg",
              "spring/sounds/day.ogg"),
    *_entries("megaglest-data", _MG, "rain", "autumn/sounds/rain.ogg", "birch_forest/sounds/rain.ogg",
              "dark_forest/sounds/rain.ogg", "desert2/sounds/rain.wav"),
    *_entries("megaglest-data", _MG, "wind", "desert2/sounds/day.ogg", "winter/sounds/wind.ogg",
              "winter_forest/sounds/wind.ogg"),
    # scorched3d-data: landscape ambience and loops
    *_entries("scorched3d-data", f"{_S3D}/none/data/wav/misc", "forest", "birds1.wav", "birds2.wav", "frogs.wav"),
    *_entries("scorched3d-data", f"{_S3D}/none/data/wav/misc", "water", "oceanwaves.wav"),
    *_entries("scorched3d-data", f"{_S3D}/none/data/wav/misc", "rain", "rain.wav"),
    *_entries("scorched3d-data", f"{_S3D}/apoc/data/wav/misc", "crowd", "citysounds.wav", "cheeringloop.wav"),
    *_entries("scorched3d-data", f"{_S3D}/apoc/data/wav/misc", "machine", "factoryloop1.wav"),
    # lugaru-data: level ambience
    *_entries("lugaru-data", "usr/share/games/lugaru/Sounds", "wind", "Wind.ogg", "DesertAmbient.ogg"),
    # endless-sky-data: ambient machinery
    *_entries("endless-sky-data", "usr/share/games/endless-sky/sounds/ambient", "machine", "machinery.mp3"),
    # flare-game: environment loops
    *_entries("flare-game", f"{_FLARE}/empyrean_campaign/soundfx/environment", "rain", "rain.ogg"),
    *_entries("flare-game", f"{_FLARE}/fantasycore/soundfx/environment", "wind", "wind_loop.ogg",
              "cave_wind_loop.ogg"),
    *_entries("flare-game", f"{_FLARE}/fantasycore/soundfx/environment", "forest", "bird_twitter_loop.ogg",
              "forest_owl_loop.ogg", "raven_loop.ogg"),
    *_entries("flare-game", f"{_FLARE}/fantasycore/soundfx/environment", "water", "river_loop.ogg",
              "cave_droplets_loop.ogg"),
    *_entries("flare-game", f"{_FLARE}/fantasycore/soundfx/environment", "fire", "open_fire.ogg"),
    # supertuxkart-data: ambience of the tracks
    *_entries("supertuxkart-data", f"{_STK}/sfx", "forest", "exotic-birds.ogg", "exotic-birds_2.ogg"),
    *_entries("supertuxkart-data", f"{_STK}/sfx", "crowd", "lenautile_restaurant.ogg", "sara_airport_pa.ogg"),
    *_entries("supertuxkart-data", f"{_STK}/sfx", "water", "river_loop.ogg", "waterfall_loop_2.ogg"),
    *_entries("supertuxkart-data", f"{_STK}/sfx", "rain", "rain.ogg"),
    *_entries("supertuxkart-data", f"{_STK}/sfx", "machine", "spaceship.ogg", "machine_sound.ogg",
              "airplane_jetEngine.ogg"),
    *_entries("supertuxkart-data", _STK, "machine", "library/stklib_steamLocomotive_a/steamLocomotive.ogg",
              "tracks/black_forest/steamLocomotive.ogg"),
    # supertux-data: level ambience
    *_entries("supertux-data", "usr/share/games/supertux2/sounds", "rain", "rain.wav"),
    *_entries("supertux-data", "usr/share/games/supertux2/sounds", "water", "waterfall.wav"),
    # unknown-horizons: building ambience
    *_entries("unknown-horizons", _UH, "crowd", "tavern.ogg", "main_square.ogg"),
    *_entries("unknown-horizons", _UH, "machine", "windmill.ogg"),
    # wesnoth-1.16-data: ambient sounds
    *_entries("wesnoth-1.16-data", _WES, "forest", "birds1.ogg", "birds2.ogg", "birds3.ogg", "morning.ogg",
              "night.ogg"),
    *_entries("wesnoth-1.16-data", _WES, "fire", "campfire.ogg"),
    # minetest-data: environment sounds of minetest_game
    *_entries("minetest-data", _MT, "water", "env_sounds/sounds/env_sounds_water.*.ogg"),
    *_entries("minetest-data", _MT, "fire", "fire/sounds/fire_large.ogg", "fire/sounds/fire_small.ogg",
              "fire/sounds/fire_fire.*.ogg", "default/sounds/default_furnace_active.ogg"),
    # tuxfootball: stadium crowd
    *_entries("tuxfootball", "usr/share/games/tuxfootball/sound", "crowd", "crowdboo.wav", "crowdcheer.wav"),
    # lincity-ng-data: city building loops
    *_entries("lincity-ng-data", _LC, "machine", "IndustryHigh[0-9].wav", "IndustryLight[0-9].wav",
              "PowerCoalFull.wav"),
    *_entries("lincity-ng-data", _LC, "crowd", "SportsCroud[0-9].wav", "MarketFull[0-9].wav"),
    *_entries("lincity-ng-data", _LC, "water", "Water[0-9].wav"),
    *_entries("lincity-ng-data", _LC, "fire", "Fire[0-9].wav"),
)

MIN_DURATION_S = 3.0
MIN_OVERLAP_S = 0.5        # shared audio that ties two clips together (about 1.5 fingerprint frames)
DUPLICATE_FRACTION = 0.8   # a clip sharing this much of its length with a longer clip is a copy
MAX_SILENT_S = 1.0         # longest silent stretch a clip may hold inside (after trimming its ends)
SILENCE_DB = -60.0         # a 50 ms frame this far under the file's RMS is silent
ACTIVITY_VERSION = "a1"    # part of the activity cache key
RECIPE_VERSION = "1"       # bumped when the recipe or the selection rules change
MANIFEST = "clips.csv"
REPORT = "dedup_report.csv"
#: Cache folders (under the cache root) whose ``debs/`` may already hold a package's .deb.
SHARED_DEB_CACHES: tuple[str, ...] = ("debian-music",)


def recipe_packages(recipe: Sequence[RecipeEntry] = RECIPE) -> tuple[str, ...]:
    """The packages a recipe names, in recipe order."""
    return tuple(dict.fromkeys(e.package for e in recipe))


def check_recipe(recipe: Iterable[RecipeEntry]) -> tuple[RecipeEntry, ...]:
    """Validate recipe entries; raise NoiseBankError naming the entry and field that is wrong."""
    out = tuple(recipe)
    if not out:
        raise NoiseBankError("the noise recipe is empty: name at least one (package, pattern, kind) entry")
    for n, e in enumerate(out):
        if not isinstance(e, RecipeEntry):
            raise NoiseBankError(f"recipe entry {n}: expected a RecipeEntry(package, pattern, kind), got {e!r}")
        if e.kind not in KINDS:
            raise NoiseBankError(f"recipe entry {n} ({e.package}: {e.pattern}): kind {e.kind!r} is not one "
                                 f"of {list(KINDS)}")
        if not e.package or "/" in e.package or "_" in e.package:
            raise NoiseBankError(f"recipe entry {n}: package {e.package!r} is not a Debian package name")
        parts = PurePosixPath(e.pattern).parts
        if not e.pattern or e.pattern.startswith("/") or ".." in parts:
            raise NoiseBankError(f"recipe entry {n} ({e.package}): pattern {e.pattern!r} must be a relative "
                                 "path inside the package, without '..'")
    return out


# --------------------------------------------------------------------------------------
# Select
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseCandidate(Candidate):
    """A file the recipe selected, with its kind; ``track_id`` holds the noise id."""

    kind: str = ""


def noise_id(package: str, rel_path: str) -> str:
    """The id of a file of a package: 'debian-noise/<package>/<path without extension>'."""
    return f"debian-noise/{package}/{PurePosixPath(rel_path).with_suffix('').as_posix()}"


def select_noise_files(trees: Mapping[str, Path], recipe: Sequence[RecipeEntry] = RECIPE,
                       min_duration_s: float = MIN_DURATION_S,
                       on_exclude: Callable[[Exclusion], None] | None = None) -> list[NoiseCandidate]:
    """The files the recipe names in the extracted ``trees`` ({package: folder}), in recipe order.

    A file matched by two entries takes the first entry's kind. Entries of a package in
    ``trees`` that match no audio file, symbolic links, unreadable files and files shorter
    than ``min_duration_s`` are passed to ``on_exclude`` (kind "not found", "link",
    "unreadable", "too short"). Entries of packages missing from ``trees`` are skipped.
    """
    recipe = check_recipe(recipe)

    def exclude(kind: str, package: str, rel: str, reason: str) -> None:
        if on_exclude is not None:
            on_exclude(Exclusion(kind, package, rel, reason))

    files: dict[str, list[str]] = {}
    for pkg, tree in trees.items():
        files[pkg] = sorted(p.relative_to(tree).as_posix() for p in Path(tree).rglob("*")
                            if p.suffix.lower() in AUDIO_EXTENSIONS and (p.is_file() or p.is_symlink()))
    file_sets = {pkg: set(names) for pkg, names in files.items()}
    seen: set[tuple[str, str]] = set()
    out: list[NoiseCandidate] = []
    for e in recipe:
        if e.package not in trees:
            continue
        tree = Path(trees[e.package])
        if any(ch in e.pattern for ch in "*?["):
            matches = [r for r in files[e.package] if fnmatch.fnmatchcase(r, e.pattern)]
        else:
            matches = [e.pattern] if e.pattern in file_sets[e.package] else []
        if not matches:
            exclude("not found", e.package, e.pattern, f"no audio file matches {e.pattern!r} in {tree}")
        for rel in matches:
            if (e.package, rel) in seen:
                continue
            seen.add((e.package, rel))
            path = tree / rel
            if path.is_symlink():
                exclude("link", e.package, rel, f"symbolic link to {os.readlink(path)}")
                continue
            try:
                info = audio_info(path)
            except AudioReadError as exc:
                exclude("unreadable", e.package, rel, str(exc))
                continue
            if info.duration_s < min_duration_s:
                exclude("too short", e.package, rel, f"{info.duration_s:.1f} s is shorter than {min_duration_s:g} s")
                continue
            out.append(NoiseCandidate(e.package, tree, rel, info.duration_s, info.sample_rate, info.channels,
                                      path.stat().st_size, noise_id(e.package, rel), e.kind))
    counts = Counter(c.track_id for c in out)
    clash = {i for i, n in counts.items() if n > 1}  # same path but the extension: keep it in the id
    return [NoiseCandidate(c.package, c.package_root, c.rel_path, c.duration_s, c.sample_rate, c.channels,
                           c.size_bytes, f"debian-noise/{c.package}/{c.rel_path}", c.kind)
            if c.track_id in clash else c for c in out]


@dataclass(frozen=True)
class Activity:
    """Where a recording is not silent: its first and last non-silent sample times (s) and the
    longest silent stretch between them (s)."""

    start_s: float
    end_s: float
    longest_silence_s: float

    @property
    def duration_s(self) -> float:
        """Length after trimming the silent ends."""
        return max(0.0, self.end_s - self.start_s)


def activity(audio: np.ndarray, sample_rate: int, frame_s: float = 0.05,
             silence_db: float = SILENCE_DB) -> Activity:
    """Silent ends and the longest inner silence of a signal, in 50 ms frames: a frame is silent
    when its mean square is ``silence_db`` dB or more under the whole signal's."""
    x = np.asarray(audio, dtype=np.float64)
    frame = max(1, int(round(frame_s * sample_rate)))
    n = x.size // frame
    if n == 0:
        return Activity(0.0, 0.0, 0.0)
    power = np.square(x[: n * frame]).reshape(n, frame).mean(axis=1)
    total = float(np.mean(np.square(x)))
    loud = power > total * 10 ** (silence_db / 10) if total > 0 else np.zeros(n, bool)
    if not loud.any():
        return Activity(0.0, 0.0, x.size / sample_rate)
    first, last = int(np.argmax(loud)), n - 1 - int(np.argmax(loud[::-1]))
    inner = ~loud[first:last + 1]
    edges = np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    end = x.size if last == n - 1 else (last + 1) * frame  # a partial last frame belongs to the end
    return Activity(first * frame / sample_rate, end / sample_rate,
                    float(runs.max() * frame / sample_rate) if runs.size else 0.0)


def file_activity(path: Path | str, sha256: str, cache: Path | None, sample_rate: int = 8000) -> Activity:
    """:func:`activity` of an audio file, cached as json in ``cache`` under the file's sha256."""
    import json

    cached = Path(cache) / f"{sha256}.json" if cache is not None else None
    if cached is not None and cached.is_file():
        try:
            return Activity(**json.loads(cached.read_text()))
        except (OSError, ValueError, TypeError):
            pass
    act = activity(read_audio(path, sample_rate), sample_rate)
    if cached is not None:
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps(asdict(act)))
    return act


def reuse_debs(packages: Iterable[str], dest: Path | str, sources: Iterable[Path | str]) -> list[str]:
    """Link (or copy) into ``dest/debs`` the .deb of each package that is neither extracted nor
    downloaded under ``dest`` but lies in one of the ``sources`` folders; return those packages."""
    debs = Path(dest) / "debs"
    done = []
    for pkg in packages:
        if is_extracted(Path(dest) / pkg) or (debs.is_dir() and find_deb(debs, pkg)):
            continue
        for src in map(Path, sources):
            deb = find_deb(src, pkg) if src.is_dir() else None
            if deb is None:
                continue
            debs.mkdir(parents=True, exist_ok=True)
            try:
                os.link(deb, debs / deb.name)
            except OSError:
                shutil.copy2(deb, debs / deb.name)
            done.append(pkg)
            break
    return done


# --------------------------------------------------------------------------------------
# The bank
# --------------------------------------------------------------------------------------

class DebianNoiseBank(NoiseBank):
    """Real ambience from Debian game data packages, deduplicated by content (see the module doc).

    ``root`` holds the extracted packages (``root/<package>/``), the fingerprints and the
    manifest; by default ``datasets.cache.cache_dir("debian-noise")``. With ``fetch=True``
    packages not yet extracted under ``root`` are fetched with apt-get/dpkg; with
    ``fetch=False`` only trees already there are used. Packages that fail are left out with a
    warning and listed in ``failed_packages``; every file left out is in ``excluded`` (and
    ``root/dedup_report.csv``), unreadable ones also in ``skipped``.
    """

    name = "debian"

    def __init__(self, protocol: Protocol = Protocol(), root: Path | str | None = None,
                 recipe: Sequence[RecipeEntry] = RECIPE, fetch: bool = True, progress: bool = True,
                 min_duration_s: float = MIN_DURATION_S, min_overlap_s: float = MIN_OVERLAP_S,
                 duplicate_fraction: float = DUPLICATE_FRACTION, max_silent_s: float = MAX_SILENT_S,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS, workers: int = 2,
                 params: FingerprintParams = DEFAULT_PARAMS) -> None:
        super().__init__(protocol, split_fractions)
        self.recipe = check_recipe(recipe)
        if not 0.0 < duplicate_fraction <= 1.0:
            raise ValueError(f"duplicate_fraction={duplicate_fraction}: allowed (0, 1]")
        self.root = Path(root).expanduser() if root is not None else cache_dir("debian-noise")
        self.root.mkdir(parents=True, exist_ok=True)
        self.min_duration_s = float(min_duration_s)
        self.min_overlap_s = float(min_overlap_s)
        self.duplicate_fraction = float(duplicate_fraction)
        self.max_silent_s = float(max_silent_s)
        self.params = params
        self.failed_packages: dict[str, str] = {}
        self.excluded: list[Exclusion] = []
        self.overlaps: list[Overlap] = []
        self.timings: dict[str, float] = {}
        self.content_fingerprints: dict[str, Fingerprint] = {}
        self._rows: dict[str, dict] = {}
        self._paths: dict[str, Path] = {}
        self._spans: dict[str, tuple[float, float]] = {}  # (start_s, end_s) kept of each file
        packages = recipe_packages(self.recipe)

        t0 = time.perf_counter()
        if fetch:
            reuse_debs(packages, self.root, [cache_root() / name / "debs" for name in SHARED_DEB_CACHES])
            trees = fetch_packages(packages, self.root, progress, errors=self.failed_packages, label="debian-noise")
        else:
            trees = find_extracted(self.root, packages, errors=self.failed_packages)
            for pkg, err in self.failed_packages.items():
                warnings.warn(f"debian-noise: leaving out package {pkg}: {err}", stacklevel=2)
        self.versions = {pkg: package_version(tree, pkg) for pkg, tree in trees.items()}
        self.excluded += [Exclusion("package failed", pkg, "", err)
                          for pkg, err in sorted(self.failed_packages.items())]
        self.timings["fetch_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        candidates = select_noise_files(trees, self.recipe, self.min_duration_s, on_exclude=self.excluded.append)
        self.timings["select_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        fps, shas, acts = self._analyse(candidates, progress, workers)
        self.timings["fingerprint_s"] = time.perf_counter() - t0

        for e in self.excluded:
            if e.kind == "unreadable":
                path = trees[e.package] / e.rel_path
                warn_skip(path, e.reason)
                self.skipped.append(Skipped(str(path), e.reason))

        t0 = time.perf_counter()
        durations = {i: a.duration_s for i, a in acts.items()}
        kept = self._deduplicate([c for c in candidates if c.track_id in fps], fps, durations)
        self.timings["dedup_s"] = time.perf_counter() - t0
        if not kept:
            self._write_manifest()
            raise NoiseBankError(f"debian-noise: no usable recording under {self.root} "
                                 f"({len(candidates)} selected, {len(self.excluded)} left out; "
                                 f"see {self.root / REPORT})")
        groups = content_groups([c.track_id for c in kept], self.overlaps, durations)
        self._set_clips([(c.track_id, c.kind, durations[c.track_id]) for c in kept], groups)
        for c in kept:
            i, act = c.track_id, acts[c.track_id]
            self._paths[i] = c.path
            self._spans[i] = (act.start_s, act.end_s)
            self.content_fingerprints[i] = fps[i]
            self._rows[i] = {
                "noise_id": i, "kind": c.kind, "package": c.package, "version": self.versions.get(c.package, ""),
                "path": c.rel_path, "licence": licence_path(c.package_root, c.package),
                "duration_s": round(act.duration_s, 4), "start_s": round(act.start_s, 4),
                "file_duration_s": round(c.duration_s, 4), "sample_rate": c.sample_rate, "channels": c.channels,
                "group": groups[i], "split": self.clip(i).split, "sha256": shas[i]}
        self._write_manifest()

    def _analyse(self, candidates: Sequence[NoiseCandidate], progress: bool, workers: int
                 ) -> tuple[dict[str, Fingerprint], dict[str, str], dict[str, Activity]]:
        """Fingerprint and silence analysis of every candidate (both cached by sha256);
        candidates that do not decode or fail the silence rules are excluded."""
        from datasets.progress import tqdm

        fp_dir = self.root / "fingerprints" / self.params.key()
        act_dir = self.root / "activity" / f"{ACTIVITY_VERSION}{SILENCE_DB:g}"
        for d in (fp_dir, act_dir):
            d.mkdir(parents=True, exist_ok=True)

        def one(c: NoiseCandidate) -> tuple[str, Fingerprint, Activity]:
            sha, fp, _ = fingerprint_file(c.path, fp_dir, self.params)
            return sha, fp, file_activity(c.path, sha, act_dir, self.params.sample_rate)

        fps: dict[str, Fingerprint] = {}
        shas: dict[str, str] = {}
        acts: dict[str, Activity] = {}
        by_id = {c.track_id: c for c in candidates}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {i: pool.submit(one, c) for i, c in by_id.items()}
            for i in tqdm(futures, desc="fingerprinting debian-noise", unit="file", disable=not progress):
                c = by_id[i]
                try:
                    sha, fp, act = futures[i].result()
                except (AudioReadError, OSError, RuntimeError, ValueError) as exc:
                    self.excluded.append(Exclusion("unreadable", c.package, c.rel_path, str(exc), i))
                    continue
                if act.longest_silence_s > self.max_silent_s:
                    self.excluded.append(Exclusion(
                        "silent stretch", c.package, c.rel_path,
                        f"holds {act.longest_silence_s:.1f} s of silence (allowed {self.max_silent_s:g} s)", i))
                elif act.duration_s < self.min_duration_s:
                    self.excluded.append(Exclusion(
                        "too short", c.package, c.rel_path,
                        f"{act.duration_s:.1f} s without its silent ends is shorter than {self.min_duration_s:g} s", i))
                else:
                    fps[i], shas[i], acts[i] = fp, sha, act
        return fps, shas, acts

    def _deduplicate(self, candidates: Sequence[NoiseCandidate], fps: Mapping[str, Fingerprint],
                     durations: Mapping[str, float]) -> list[NoiseCandidate]:
        """Drop copies (``duplicate_fraction`` of a clip inside a longer one); keep the rest and
        their overlaps (in ``self.overlaps``) for grouping."""
        by_id = {c.track_id: c for c in candidates}
        overlaps = find_overlaps({i: fps[i] for i in by_id}, self.min_overlap_s)
        copies = [o for o in overlaps if o.match_fraction >= self.duplicate_fraction]
        kept, dropped = deduplicate(list(by_id), fps, durations, self.min_overlap_s, overlaps=copies)
        for d in dropped:
            c = by_id[d.track_id]
            self.excluded.append(Exclusion(
                "duplicate", c.package, c.rel_path,
                f"shares {d.overlap_s:.1f} s ({100 * d.match_fraction:.0f}% of the shorter clip) with {d.duplicate_of}",
                d.track_id, d.duplicate_of, d.overlap_s, d.offset_s, d.match_fraction))
        keep = set(kept)
        self.overlaps = [o for o in overlaps if o.a in keep and o.b in keep]
        return [by_id[i] for i in kept]

    def _write_manifest(self) -> None:
        import pandas as pd

        rows = [self._rows[c.noise_id] for c in self.clips()]
        cols = list(Exclusion.__dataclass_fields__)
        report = pd.DataFrame([asdict(e) for e in self.excluded], columns=cols)
        report = report.sort_values(["kind", "package", "rel_path"], kind="stable")
        for name, df in ((MANIFEST, pd.DataFrame(rows)), (REPORT, report)):
            with atomic_path(self.root / name) as tmp:
                df.to_csv(tmp, index=False)

    def meta(self, noise_id: str) -> dict:
        """Where a clip comes from: package, version, path, licence file, group, sha256..."""
        self.clip(noise_id)
        return dict(self._rows[noise_id])

    def source_path(self, noise_id: str) -> Path:
        """The file a clip is read from (the clip is that file without its silent ends)."""
        self.clip(noise_id)
        return self._paths[noise_id]

    def groups(self) -> dict[str, list[str]]:
        """Content groups with two or more clips: {group: member ids} (one split each)."""
        return shared_groups({i: row["group"] for i, row in self._rows.items()})

    def identity(self) -> dict:
        """Recipe version, fingerprint, silence and dedup settings, package versions, clips and splits."""
        return {"bank": "debian-noise", "recipe_version": RECIPE_VERSION, "fingerprint": self.params.key(),
                "activity": f"{ACTIVITY_VERSION}{SILENCE_DB:g}", "max_silent_s": self.max_silent_s,
                "sample_rate": self.protocol.sample_rate, "splits": list(self.split_fractions),
                "min_overlap_s": self.min_overlap_s, "duplicate_fraction": self.duplicate_fraction,
                "versions": dict(sorted(self.versions.items())),
                "clips": [(c.noise_id, c.kind, round(c.duration_s, 3), self._rows[c.noise_id]["group"])
                          for c in self.clips()]}

    def _read(self, clip: NoiseClip) -> np.ndarray:
        path = self._paths[clip.noise_id]
        sr = self.protocol.sample_rate
        start_s, end_s = self._spans[clip.noise_id]
        audio = read_audio(path, sr)[int(round(start_s * sr)):int(round(end_s * sr))]
        try:
            return _rms_normalise(audio)
        except ValueError:
            raise AudioReadError(f"{path}: silent recording, cannot use it as noise") from None


def describe(bank: DebianNoiseBank) -> str:
    """A short text summary: clips, minutes and split counts per kind."""
    lines = [f"{'kind':8s} {'clips':>5s} {'min':>6s} {'train':>5s} {'val':>4s} {'test':>4s}"]
    for kind in bank.kinds():
        clips = [c for c in bank.clips() if c.kind == kind]
        n = {s: sum(c.split == s for c in clips) for s in ("train", "val", "test")}
        lines.append(f"{kind:8s} {len(clips):5d} {sum(c.duration_s for c in clips) / 60:6.1f} "
                     f"{n['train']:5d} {n['val']:4d} {n['test']:4d}")
    total = bank.clips()
    lines.append(f"{'all':8s} {len(total):5d} {sum(c.duration_s for c in total) / 60:6.1f}")
    return "\n".join(lines)
