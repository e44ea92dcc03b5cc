"""The ``debian-music`` corpus: free-licensed game soundtracks from Debian packages.

Recipe:

1. **Fetch** (:func:`datasets.debian_packages.fetch_packages`): ``apt-get download PKG`` then ``dpkg -x PKG.deb DIR``
   for each package of :data:`PACKAGES`, into ``<root>/debs/`` and ``<root>/<PKG>/``;
   nothing is installed. An extracted tree carries a marker file with the package's version
   (``dpkg-deb -f PKG.deb Version``), so a re-run does not fetch again.
2. **Select** (:func:`select_music_files`): audio files (ogg, opus, flac, wav, mp3, ...) in a
   folder whose path names music (a directory component containing "music", any case), at
   least 45 s long, minus the sped-up copies supertuxkart ships (:func:`sped_up_reason`).
3. **Catalogue** (:func:`build_catalogue`): decode each file once at 8 kHz, fingerprint it
   (cached by the file's sha256), find shared audio between tracks with
   :func:`datasets.dedup.find_overlaps` (re-encoded copies, renamed copies, and partial
   overlaps of >= 20 s), keep the longest track of each overlapping group, and record the
   package, version, path, licence file and duration of every kept track.
4. **Write** ``tracks.csv`` (the manifest), ``dedup_report.csv`` (every file left out and
   why), ``overlaps.csv`` and ``catalogue.json`` (packages, versions, failures, stage
   timings, cache key) in the root folder, atomically. A later run with the same packages,
   files and settings reads the manifest instead of rebuilding it.

Track ids are ``"<package>/<path inside the package without extension>"``, e.g.
``supertux-data/usr/share/games/supertux2/music/misc/battle_theme``: stable across runs.
"""
from __future__ import annotations

import fnmatch
import json
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Sequence

from datasets.audio_io import AUDIO_EXTENSIONS, AudioReadError, audio_info
from datasets.cache import atomic_path, atomic_write_json, cache_dir, stable_hash
from datasets.debian_packages import fetch_packages, find_extracted, licence_path, package_version
from datasets.dedup import (
    DEFAULT_PARAMS,
    Fingerprint,
    FingerprintParams,
    Overlap,
    deduplicate,
    find_overlaps,
    fingerprint_file,
)
from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .corpus import Corpus, Track

#: Debian packages whose music makes up the corpus (all free-licensed game data).
PACKAGES: tuple[str, ...] = (
    "supertux-data",
    "supertuxkart-data",
    "hedgewars-data",
    "freedroidrpg-data",
    "singularity-music",
    "flare-game",
    "marsshooter-data",
    "unknown-horizons",
    "starfighter-data",
)

MIN_DURATION_S = 45.0
MIN_OVERLAP_S = 20.0
#: A file is music when a folder on its path (inside the package) contains one of these words.
MUSIC_DIR_WORDS: tuple[str, ...] = ("music",)
#: File names that always mark a sped-up copy (supertuxkart's ``*_fast.ogg``, played on the last lap).
SPED_UP_PATTERNS: tuple[str, ...] = ("*_fast", "*-fast", "*_faster", "*-faster", "*_fast[0-9]")
#: Suffixes that mark a sped-up copy when the file without the suffix sits in the same folder
#: (supertuxkart's ``farm_f.ogg`` beside ``farm.ogg``).
SPED_UP_SIBLING_SUFFIXES: tuple[str, ...] = ("_f", "-f", "_fast", "-fast", "_faster", "-faster")

MANIFEST = "tracks.csv"
REPORT = "dedup_report.csv"
OVERLAPS = "overlaps.csv"
CATALOGUE = "catalogue.json"
RECIPE_VERSION = "1"  # bumped when the selection or catalogue rules change


# --------------------------------------------------------------------------------------
# Select: music folders, duration, sped-up copies
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """An audio file that passed the selection rules, with its header facts."""

    package: str
    package_root: Path
    rel_path: str  # posix path inside the package tree
    duration_s: float
    sample_rate: int
    channels: int
    size_bytes: int
    track_id: str = ""

    @property
    def path(self) -> Path:
        """Absolute path of the file."""
        return self.package_root / self.rel_path


@dataclass(frozen=True)
class Exclusion:
    """A file (or package) left out of the corpus, and why.

    ``kind`` is one of "sped-up copy", "too short", "unreadable", "duplicate", "package failed".
    """

    kind: str
    package: str
    rel_path: str
    reason: str
    track_id: str = ""
    duplicate_of: str = ""
    overlap_s: float | None = None
    offset_s: float | None = None
    match_fraction: float | None = None


def is_music_path(rel_path: str, words: Sequence[str] = MUSIC_DIR_WORDS) -> bool:
    """Whether a folder on ``rel_path`` (not the file name) contains one of ``words``, any case."""
    parts = PurePosixPath(rel_path).parts[:-1]
    return any(w in part.lower() for part in parts for w in words)


def sped_up_reason(path: Path, siblings: Iterable[str] | None = None) -> str | None:
    """Why a file is a sped-up copy of another track, or None.

    Name rules: a stem matching :data:`SPED_UP_PATTERNS` (``*_fast``, ``*-fast``, ``*_faster``)
    is a sped-up copy; so is a stem ``X`` + suffix of :data:`SPED_UP_SIBLING_SUFFIXES` (``_f``,
    ...) when an audio file with stem ``X`` is in the same folder (``farm_f.ogg`` beside
    ``farm.ogg``). ``siblings`` are the stems in the folder (read from disk when None).
    """
    stem = path.stem
    low = stem.lower()
    for pat in SPED_UP_PATTERNS:
        if fnmatch.fnmatchcase(low, pat):
            return f"sped-up copy (name matches {pat!r})"
    if siblings is None:
        siblings = [p.stem for p in path.parent.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS]
    stems = {s.lower() for s in siblings}
    for suffix in SPED_UP_SIBLING_SUFFIXES:
        if low.endswith(suffix) and low[: -len(suffix)] in stems:
            base = stem[: -len(suffix)]
            return f"sped-up copy of {base!r} (name {base}{suffix} beside {base})"
    return None


def select_music_files(extracted_root: Path | str, package: str | None = None,
                       min_duration_s: float = MIN_DURATION_S,
                       on_exclude: Callable[[Exclusion], None] | None = None,
                       words: Sequence[str] = MUSIC_DIR_WORDS, files: Sequence[str] = ()) -> list[Candidate]:
    """Music files of one extracted package tree, in path order.

    Keeps audio files (:data:`datasets.audio_io.AUDIO_EXTENSIONS`) in a music folder
    (:func:`is_music_path` with ``words``; or, when ``files`` holds patterns, whose lower-case path
    matches one as :func:`fnmatch.fnmatchcase` matches) that are not sped-up copies
    (:func:`sped_up_reason`), whose header reads, and that last at least ``min_duration_s``.
    Music files that fail a rule are passed to ``on_exclude`` (kind "sped-up copy", "too short"
    or "unreadable"); other files (sound effects) and symbolic links are passed over silently.
    ``package`` defaults to the folder's name.
    """
    root = Path(extracted_root)
    package = package or root.name
    paths = [p for p in sorted(root.rglob("*"))
             if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_symlink() and p.is_file()]
    stems_by_dir: dict[Path, list[str]] = {}
    for p in paths:
        stems_by_dir.setdefault(p.parent, []).append(p.stem)
    out: list[Candidate] = []

    def exclude(kind: str, rel: str, reason: str) -> None:
        if on_exclude is not None:
            on_exclude(Exclusion(kind, package, rel, reason))

    for p in paths:
        rel = p.relative_to(root).as_posix()
        if not (any(fnmatch.fnmatchcase(rel.lower(), pat) for pat in files) if files else is_music_path(rel, words)):
            continue
        why = sped_up_reason(p, stems_by_dir[p.parent])
        if why:
            exclude("sped-up copy", rel, why)
            continue
        try:
            info = audio_info(p)
        except AudioReadError as exc:
            exclude("unreadable", rel, str(exc))
            continue
        if info.duration_s < min_duration_s:
            exclude("too short", rel, f"{info.duration_s:.1f} s is shorter than {min_duration_s:g} s")
            continue
        out.append(Candidate(package, root, rel, info.duration_s, info.sample_rate, info.channels,
                             p.stat().st_size))
    # Track ids: package/path without extension; where two files differ only by extension,
    # both keep their extension so the ids stay unique and stable.
    stem_ids = [f"{c.package}/{PurePosixPath(c.rel_path).with_suffix('').as_posix()}" for c in out]
    clash = {i for i in stem_ids if stem_ids.count(i) > 1}
    return [_with_id(c, f"{c.package}/{c.rel_path}" if i in clash else i) for c, i in zip(out, stem_ids)]


def _with_id(c: Candidate, track_id: str) -> Candidate:
    return Candidate(c.package, c.package_root, c.rel_path, c.duration_s, c.sample_rate, c.channels,
                     c.size_bytes, track_id)


# --------------------------------------------------------------------------------------
# Catalogue: decode once, fingerprint (cached), deduplicate, record metadata
# --------------------------------------------------------------------------------------

@dataclass
class Catalogue:
    """The outcome of :func:`build_catalogue`: kept tracks (one dict each), exclusions, overlaps."""

    tracks: list[dict]
    excluded: list[Exclusion]
    overlaps: list[Overlap]
    timings: dict[str, float] = field(default_factory=dict)

    TRACK_COLUMNS = ("track_id", "package", "version", "path", "licence", "duration_s", "sample_rate",
                     "channels", "size_bytes", "sha256")

    def tracks_frame(self):
        """Kept tracks as a pandas DataFrame (the manifest's columns), sorted by id."""
        import pandas as pd

        df = pd.DataFrame(self.tracks, columns=list(self.TRACK_COLUMNS))
        return df.sort_values("track_id", kind="stable").reset_index(drop=True)

    def report_frame(self):
        """Every exclusion as a pandas DataFrame, sorted by kind then path."""
        import pandas as pd

        cols = [f.name for f in Exclusion.__dataclass_fields__.values()]
        df = pd.DataFrame([asdict(e) for e in self.excluded], columns=cols)
        return df.sort_values(["kind", "package", "rel_path"], kind="stable").reset_index(drop=True)

    def overlaps_frame(self):
        """All overlaps found (before deduplication) as a pandas DataFrame."""
        import pandas as pd

        cols = list(Overlap.__dataclass_fields__)
        return pd.DataFrame([asdict(o) for o in self.overlaps], columns=cols)


def _fingerprint_file(c: Candidate, fp_dir: Path | None,
                      params: FingerprintParams) -> tuple[str, Fingerprint, bool]:
    return fingerprint_file(c.path, fp_dir, params)


def build_catalogue(candidates: Sequence[Candidate], fingerprint_dir: Path | str | None = None, *,
                    versions: Mapping[str, str] | None = None,
                    min_overlap_s: float = MIN_OVERLAP_S, params: FingerprintParams = DEFAULT_PARAMS,
                    progress: bool = True, workers: int = 2,
                    on_exclude: Callable[[Exclusion], None] | None = None) -> Catalogue:
    """Decode, fingerprint and deduplicate candidates; record each kept track's metadata.

    Each file is decoded once at 8 kHz and fingerprinted; fingerprints are cached in
    ``fingerprint_dir`` under the file's sha256 (none cached when None). Files that do not
    decode are excluded as "unreadable" (and passed to ``on_exclude``). Tracks sharing at
    least ``min_overlap_s`` of audio are deduplicated with :func:`datasets.dedup.deduplicate`
    (the longest of a group is kept, ties by id). ``versions`` maps package to version
    (else read from the tree, :func:`package_version`).
    """
    from datasets.progress import tqdm

    fp_dir = Path(fingerprint_dir) if fingerprint_dir is not None else None
    if fp_dir is not None:
        fp_dir.mkdir(parents=True, exist_ok=True)
    excluded: list[Exclusion] = []

    def exclude(e: Exclusion) -> None:
        excluded.append(e)
        if on_exclude is not None:
            on_exclude(e)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fps: dict[str, Fingerprint] = {}
    shas: dict[str, str] = {}
    n_cached = 0
    by_id = {c.track_id: c for c in candidates}
    if len(by_id) != len(candidates):
        raise ValueError("candidates hold duplicate track ids")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {c.track_id: pool.submit(_fingerprint_file, c, fp_dir, params) for c in candidates}
        for tid in tqdm(futures, desc="fingerprinting music files", unit="file", disable=not progress):
            c = by_id[tid]
            try:
                sha, fp, was_cached = futures[tid].result()
            except (AudioReadError, OSError, RuntimeError, ValueError) as exc:
                exclude(Exclusion("unreadable", c.package, c.rel_path, str(exc), tid))
                continue
            n_cached += was_cached
            fps[tid], shas[tid] = fp, sha
    timings["fingerprint_s"] = time.perf_counter() - t0
    timings["fingerprints_cached"] = float(n_cached)

    t0 = time.perf_counter()
    ids = sorted(fps)
    overlaps = find_overlaps(fps, min_overlap_s)
    durations = {i: by_id[i].duration_s for i in ids}
    kept, dropped = deduplicate(ids, fps, durations, min_overlap_s, overlaps=overlaps)
    timings["dedup_s"] = time.perf_counter() - t0
    for d in dropped:
        c = by_id[d.track_id]
        exclude(Exclusion("duplicate", c.package, c.rel_path,
                          f"shares {d.overlap_s:.1f} s ({100 * d.match_fraction:.0f}% of the shorter track) "
                          f"with {d.duplicate_of}", d.track_id, d.duplicate_of, d.overlap_s, d.offset_s,
                          d.match_fraction))
    versions = dict(versions or {})
    rows = []
    for tid in kept:
        c = by_id[tid]
        if c.package not in versions:
            versions[c.package] = package_version(c.package_root, c.package)
        rows.append({"track_id": tid, "package": c.package, "version": versions[c.package],
                     "path": c.rel_path, "licence": licence_path(c.package_root, c.package),
                     "duration_s": round(c.duration_s, 4), "sample_rate": c.sample_rate,
                     "channels": c.channels, "size_bytes": c.size_bytes, "sha256": shas[tid]})
    return Catalogue(rows, excluded, overlaps, timings)


def write_catalogue(catalogue: Catalogue, dest: Path | str, meta: Mapping[str, object]) -> None:
    """Write the manifest, dedup report, overlaps and ``catalogue.json`` into ``dest``, atomically.

    ``catalogue.json`` is written last: it names the cache key, so a crash midway leaves no
    key that would vouch for a half-written set.
    """
    dest = Path(dest)
    (dest / CATALOGUE).unlink(missing_ok=True)
    for name, df in ((MANIFEST, catalogue.tracks_frame()), (REPORT, catalogue.report_frame()),
                     (OVERLAPS, catalogue.overlaps_frame())):
        with atomic_path(dest / name) as tmp:
            df.to_csv(tmp, index=False)
    atomic_write_json(dest / CATALOGUE, dict(meta))


# --------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------

class DebianMusicCorpus(Corpus):
    """Music of free-licensed Debian game packages, deduplicated by content.

    ``root`` is the folder holding the extracted packages (``root/<package>/``) and the
    manifest; by default the cache folder ``datasets.cache.cache_dir("debian-music")``. With
    ``fetch=True`` missing packages are fetched with apt-get/dpkg (:func:`fetch_packages`);
    with ``fetch=False`` only trees already under ``root`` are used (:func:`find_extracted`).
    Packages that fail are left out with a warning and listed in ``failed_packages``. Files
    that cannot be decoded are in ``skipped``; everything left out (sped-up copies, short
    files, duplicates) is in ``excluded`` and in ``root/dedup_report.csv``.
    """

    name = "debian-music"
    recipe_version = RECIPE_VERSION  # part of the manifest's cache key

    def __init__(self, protocol: Protocol = Protocol(),
                 split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
                 root: Path | None = None, packages: Sequence[str] = PACKAGES, fetch: bool = True,
                 progress: bool = True, min_duration_s: float = MIN_DURATION_S,
                 min_overlap_s: float = MIN_OVERLAP_S, workers: int = 2) -> None:
        super().__init__(protocol, split_fractions)
        self.root = Path(root) if root is not None else cache_dir(self.name)
        self.root.mkdir(parents=True, exist_ok=True)
        self.packages = tuple(dict.fromkeys(packages))
        self.min_duration_s = float(min_duration_s)
        self.min_overlap_s = float(min_overlap_s)
        self.failed_packages: dict[str, str] = {}
        self.excluded: list[Exclusion] = []
        self.timings: dict[str, float] = {}
        self.from_manifest = False
        t_all = time.perf_counter()

        t0 = time.perf_counter()
        if fetch:
            trees = fetch_packages(self.packages, self.root, progress, errors=self.failed_packages, label=self.name)
        else:
            trees = find_extracted(self.root, self.packages, errors=self.failed_packages)
        if not fetch:  # fetch_packages warns itself
            for pkg, err in self.failed_packages.items():
                warnings.warn(f"{self.name}: leaving out package {pkg}: {err}", stacklevel=2)
        self.versions = {pkg: package_version(tree, pkg) for pkg, tree in trees.items()}
        self.timings["fetch_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        found: list[Exclusion] = []
        candidates: list[Candidate] = []
        for pkg, tree in trees.items():
            self._prepare_tree(pkg, tree)
            candidates += select_music_files(tree, pkg, self.min_duration_s, on_exclude=found.append,
                                             words=self._music_words(pkg), files=self._music_files(pkg))
        self.timings["select_s"] = time.perf_counter() - t0

        key = stable_hash({"recipe": self.recipe_version, "fingerprint": DEFAULT_PARAMS.key(),
                           "min_duration_s": self.min_duration_s, "min_overlap_s": self.min_overlap_s,
                           "versions": self.versions,
                           "files": [(c.track_id, c.size_bytes, round(c.duration_s, 4)) for c in candidates]})
        if not self._load_manifest(key):
            catalogue = build_catalogue(candidates, self.root / "fingerprints" / DEFAULT_PARAMS.key(),
                                        versions=self.versions, min_overlap_s=self.min_overlap_s,
                                        progress=progress, workers=workers)
            self.timings.update(catalogue.timings)
            failed = [Exclusion("package failed", pkg, "", err) for pkg, err in sorted(self.failed_packages.items())]
            catalogue.excluded = failed + found + catalogue.excluded
            meta = {"key": key, "corpus": self.name, "packages": list(self.packages),
                    "versions": self.versions, "failed_packages": self.failed_packages,
                    "fingerprint": DEFAULT_PARAMS.key(), "min_duration_s": self.min_duration_s,
                    "min_overlap_s": self.min_overlap_s, "n_candidates": len(candidates),
                    "n_tracks": len(catalogue.tracks),
                    "hours": round(sum(r["duration_s"] for r in catalogue.tracks) / 3600, 3),
                    "timings": {k: round(v, 3) for k, v in self.timings.items()}}
            write_catalogue(catalogue, self.root, meta)
            self._load_manifest(key)
            self.from_manifest = False
        self.timings["total_s"] = time.perf_counter() - t_all

    def _prepare_tree(self, package: str, tree: Path) -> None:
        """Make a package's music visible to the selection (nothing to do for this recipe's packages)."""

    def _music_words(self, package: str) -> Sequence[str]:
        """The folder words that mark a package's music folders."""
        return MUSIC_DIR_WORDS

    def _music_files(self, package: str) -> Sequence[str]:
        """Path patterns naming a package's music files, in place of the folder words (none here)."""
        return ()

    def _load_manifest(self, key: str) -> bool:
        """Fill the corpus from ``tracks.csv``/``dedup_report.csv`` when they were built for ``key``."""
        import pandas as pd

        try:
            meta = json.loads((self.root / CATALOGUE).read_text())
            if meta.get("key") != key:
                return False
            tracks = pd.read_csv(self.root / MANIFEST, keep_default_na=False,
                                 dtype={c: str for c in Catalogue.TRACK_COLUMNS if c != "duration_s"})
            report = pd.read_csv(self.root / REPORT, dtype=str, keep_default_na=False)
        except (OSError, ValueError):
            return False
        self._tracks = {}
        for row in tracks.to_dict("records"):
            path = self.root / row["package"] / row["path"]
            meta_row = {k: str(row[k]) for k in ("package", "version", "path", "licence", "sha256")}
            self._tracks[row["track_id"]] = Track(row["track_id"], float(row["duration_s"]), path, meta_row)
        self.excluded = []
        self.skipped = []
        for row in report.to_dict("records"):
            num = {k: (float(row[k]) if row[k] != "" else None) for k in ("overlap_s", "offset_s", "match_fraction")}
            e = Exclusion(row["kind"], row["package"], row["rel_path"], row["reason"], row["track_id"],
                          row["duplicate_of"], **num)
            self.excluded.append(e)
            if e.kind == "unreadable":
                self._skip(self.root / e.package / e.rel_path, e.reason)
        self.from_manifest = True
        return True
