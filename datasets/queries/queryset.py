"""Build a standardized degraded query set: manifest, rendered audio, DB segment table, hash.

The same corpus, noise bank, room bank, config and seed give the same files byte for byte.
Each query draws from its own random stream, keyed by (seed, condition, index), so adding a
condition to the grid leaves the other queries unchanged.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import soundfile as sf
from pydantic import BeforeValidator, ConfigDict, StrictFloat, StrictInt, StrictStr

from datasets.audio_io import AudioReadError, warn_skip
from datasets.cache import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    cache_dir,
    file_sha256,
    stable_hash,
)
from datasets.corpora.corpus import Corpus
from datasets.folder_lock import folder_lock
from datasets.noise.bank import NoiseBank
from datasets.progress import tqdm
from datasets.protocol import Protocol
from datasets.rooms import RoomBank

from .conditions import CLEAN, DRY, check_distinct, parse_duration, parse_reverb, parse_snr, reverb_label, snr_label
from .degrade import degrade, measured_snr_db
from .open_set import (
    ABSENT,
    CALIBRATION,
    CALIBRATION_SPLIT,
    PRESENT,
    ROLE,
    check_absent_share,
    held_out_tracks,
    role_counts,
)
from .transforms import NONE, library_versions, parse_transform, source_samples

FORMAT_VERSION = 1
MANIFEST = "manifest.parquet"
SEGMENTS = "segments.parquet"
INFO = "queryset.json"
AUDIO_DIR = "audio"
RENDER_LOG = "render_log.jsonl"
ACTIVITY_FRAME_S = 0.1
ACTIVITY_FLOOR_DB = -40.0
MAX_START_TRIES = 50
PEAK_HEADROOM = 0.99
DIGESTS = "file_sha256"
LOCK_WHAT = "query-set folder"
LARGE_QUERY_SET = 20_000
# Measured on the default synth grid (per_cell 10: 800 queries, 2200 s of audio at 8 kHz): the FLACs took
# 1.68 bytes per sample, and rendering ran at 43-59 s of audio per second on one core of a shared 2-core machine.
FLAC_BYTES_PER_SAMPLE = 1.7
RENDER_AUDIO_S_PER_S = 50.0


def _condition_list(name: str, parse: Callable[[Any], Any], example: str, none_allowed: bool) -> BeforeValidator:
    """A config file's list of condition values (labels such as ``clean`` allowed), parsed item by
    item; errors name ``queries.NAME[i]`` (read by ``bench.run.config.checked``)."""
    def check(value: Any) -> tuple:
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"queries.{name}: expected a non-empty list such as {example}, got {value!r}")
        out = []
        for i, x in enumerate(value):
            try:
                out.append(None if x is None and none_allowed else parse(x))
            except ValueError as exc:
                raise ValueError(f"queries.{name}[{i}]: {exc}") from None
        return tuple(out)
    return BeforeValidator(check)


@dataclass(frozen=True)
class QuerySetConfig:
    """The query grid and the sampling rules; every field is part of the query set's identity.
    Read from a config file, each field is validated against its annotation (``bench.run.config.checked``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    durations: Annotated[tuple[float, ...], _condition_list("durations", parse_duration, "[1, 2]", False)] = \
        (1.0, 2.0, 3.0, 5.0)
    snrs: Annotated[tuple[float | None, ...], _condition_list("snrs", parse_snr, "[clean, 10, 0]", True)] = \
        (None, 20.0, 10.0, 5.0, 0.0)
    reverbs: Annotated[tuple[float | None, ...], _condition_list("reverbs", parse_reverb, "[none, 0.6]", True)] = \
        (None, 0.3, 0.6, 0.9)
    per_cell: StrictInt = 50
    seed: StrictInt = 0
    split: StrictStr = "test"
    rt60_tolerance: StrictFloat = 0.1
    min_active_fraction: StrictFloat = 0.8
    # tempo, pitch, speed, codec and phone axes (transforms.py)
    transforms: Annotated[tuple[str, ...], _condition_list(
        "transforms", parse_transform, "[none, stretch:1.05, pitch:-1, speed:1.02, mp3:32, phone:gsm]", False)] \
        = (NONE,)
    absent_share: StrictFloat = 0.0  # open set: the share of queries (and tracks) whose song is in no DB

    def __post_init__(self) -> None:
        if self.per_cell < 1:
            raise ValueError(f"per_cell={self.per_cell}: allowed >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"queries.seed={self.seed!r}: allowed integers >= 0")
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split={self.split!r}: allowed 'train', 'val', 'test'")
        if not (self.durations and self.snrs and self.reverbs):
            raise ValueError("durations, snrs and reverbs each need at least one value")
        for name, none_label in (("durations", CLEAN), ("snrs", CLEAN), ("reverbs", DRY)):
            check_distinct(f"queries.{name}", getattr(self, name), none_label)
        if not self.transforms:
            raise ValueError(f"queries.transforms needs at least one value (e.g. [{NONE}])")
        transforms = []
        for i, value in enumerate(self.transforms):
            try:
                transforms.append(parse_transform(value))
            except ValueError as exc:
                raise ValueError(f"queries.transforms[{i}]: {exc}") from None
        check_distinct("queries.transforms", transforms)
        object.__setattr__(self, "transforms", tuple(transforms))
        object.__setattr__(self, "absent_share", check_absent_share(self.absent_share))
        if self.absent_share > 0:
            if self.split != "test":
                raise ValueError(f"queries.absent_share={self.absent_share:g} with split={self.split!r}: open-set "
                                 f"queries need split 'test' (the calibration queries come from {CALIBRATION_SPLIT} "
                                 "tracks)")
            if self.per_cell < 2:
                raise ValueError(f"queries.per_cell={self.per_cell} with absent_share > 0: allowed >= 2 (each cell "
                                 "needs a present and an absent query)")

    @property
    def has_transforms(self) -> bool:
        """Whether the grid has a transform axis (anything but ``none`` alone)."""
        return self.transforms != (NONE,)

    def cells(self) -> Iterator[tuple[float, float | None, float | None, str]]:
        """Every (duration, snr, rt60, transform) condition of the grid, in a fixed order."""
        return itertools.product(self.durations, self.snrs, self.reverbs, self.transforms)

    def n_cells(self) -> int:
        """The number of condition cells of the grid."""
        return len(self.durations) * len(self.snrs) * len(self.reverbs) * len(self.transforms)

    def n_queries(self) -> int:
        """The number of queries of the grid (calibration queries included)."""
        per_cell = sum(role_counts(self.per_cell, self.absent_share).values()) if self.absent_share else self.per_cell
        return self.n_cells() * per_cell

    def audio_seconds(self) -> float:
        """The seconds of audio of all queries of the grid."""
        return float(sum(self.durations)) * self.n_queries() / len(self.durations)

    def to_dict(self) -> dict:
        """Plain-dict form for JSON records. The transform and open-set fields appear only when
        they differ from the defaults, so the identity (and cache key) of a grid without them is
        what it was before they existed."""
        out = asdict(self)
        if not self.has_transforms:
            del out["transforms"]
        if not self.absent_share:
            del out["absent_share"]
        return out


@dataclass
class QuerySet:
    """A built query set on disk."""

    root: Path
    info: dict = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        """The Parquet manifest, one row per query."""
        return self.root / MANIFEST

    @property
    def segments_path(self) -> Path:
        """The Parquet DB segment table (track, segment index, start time)."""
        return self.root / SEGMENTS

    def manifest(self) -> pd.DataFrame:
        """Load the manifest."""
        return pd.read_parquet(self.manifest_path)

    def segments(self) -> pd.DataFrame:
        """Load the DB segment table."""
        return pd.read_parquet(self.segments_path)

    def load_query(self, query_id: str) -> np.ndarray:
        """One rendered query as float32 at the protocol rate; AudioReadError naming the file and the
        remedy when it cannot be read."""
        path = self.root / AUDIO_DIR / f"{query_id}.flac"
        try:
            audio, _ = sf.read(str(path), dtype="float32")
        except (sf.SoundFileError, OSError) as exc:
            raise AudioReadError(
                f"{path}: cannot read this query's audio ({exc}); rebuild the query set: delete {self.root}, or run "
                f"the command that built it again (python -m bench queries --out {self.root} with its options, or "
                f"python -m bench run), which checks every file and re-renders damaged ones") from exc
        return audio

    @property
    def content_hash(self) -> str:
        """The query set's content hash (manifest, segment table and audio samples)."""
        return self.info["content_hash"]


def query_seed(seed: int, duration: float, snr: float | None, rt60: float | None, index: int,
               transform: str = NONE, role: str = PRESENT) -> int:
    """The private random seed of one query, from the global seed and its place in the grid (a
    present, untransformed query's key has neither field, so it keeps the seed it always had)."""
    key = f"{seed}|{duration:g}|{snr_label(snr)}|{reverb_label(rt60)}|{index}"
    key += f"|{transform}" if transform != NONE else ""
    key += f"|{role}" if role != PRESENT else ""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def activity(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per 100 ms frame: True where the level is within 40 dB of the track's loudest frame."""
    frame = max(1, int(ACTIVITY_FRAME_S * sample_rate))
    n = len(audio) // frame
    if n == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(np.square(audio[:n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    ref = power.max()
    if ref <= 0:
        return np.zeros(n, dtype=bool)
    return 10.0 * np.log10(np.maximum(power, 1e-30) / ref) > ACTIVITY_FLOOR_DB


def draw_start(rng: np.random.Generator, n_samples: int, n: int, active: np.ndarray,
               sample_rate: int, min_active: float) -> int:
    """A uniform random start (in samples) whose excerpt is mostly non-silent."""
    frame = max(1, int(ACTIVITY_FRAME_S * sample_rate))
    best, best_frac = 0, -1.0
    for _ in range(MAX_START_TRIES):
        start = int(rng.integers(0, n_samples - n + 1))
        window = active[start // frame:(start + n) // frame]
        frac = float(window.mean()) if window.size else 0.0
        if frac >= min_active:
            return start
        if frac > best_frac:
            best, best_frac = start, frac
    return best


@dataclass
class _TrackScan:
    n_samples: int
    active: np.ndarray


def _scan_tracks(corpus: Corpus, split: str, progress: bool) -> tuple[dict[str, _TrackScan], list[dict]]:
    scans: dict[str, _TrackScan] = {}
    unreadable: list[dict] = []
    sr = corpus.protocol.sample_rate
    for track in tqdm(corpus.tracks(split), desc=f"scan {split} tracks", disable=not progress):
        try:
            audio = corpus.load(track.track_id)
        except AudioReadError as exc:
            warn_skip(track.track_id, str(exc))
            unreadable.append({"track_id": track.track_id, "reason": str(exc)})
            continue
        scans[track.track_id] = _TrackScan(len(audio), activity(audio, sr))
    return scans, unreadable


def _bank_split(split: str) -> str:
    """Noise and rooms for test queries come from the test bank; others from the train bank."""
    return "test" if split == "test" else "train"


def _draw_manifest(config: QuerySetConfig, corpus: Corpus, scans: dict[str, _TrackScan],
                   pools: dict[str, list[str]], noise: NoiseBank, rooms: RoomBank) -> pd.DataFrame:
    """One row per query; ``pools`` are the eligible tracks of each role (present only, for a closed set)."""
    sr = corpus.protocol.sample_rate
    hop = corpus.protocol.hop_samples
    bank_split = _bank_split(config.split)
    noise_clips = noise.clips(bank_split)
    if not noise_clips and any(s is not None for s in config.snrs):
        raise ValueError(f"the noise bank has no {bank_split}-split clips")
    counts = role_counts(config.per_cell, config.absent_share) if config.absent_share else {PRESENT: config.per_cell}
    rows = []
    for (duration, snr, rt60, transform), (role, count) in itertools.product(config.cells(), counts.items()):
        n = int(round(duration * sr))
        n_src = source_samples(transform, n)
        pool = [t for t in pools[role] if scans[t].n_samples >= n_src]
        if not pool:
            raise ValueError(f"no {role} track is long enough for a {duration:g} s query under {transform} "
                             f"({n_src / sr:.2f} s of source audio)")
        weights = np.array([scans[t].n_samples - n_src + 1 for t in pool], dtype=np.float64)
        weights /= weights.sum()
        room_pool = rooms.near(rt60, bank_split, config.rt60_tolerance) if rt60 is not None else []
        for i in range(count):
            qseed = query_seed(config.seed, duration, snr, rt60, i, transform, role)
            rng = np.random.default_rng(qseed)
            track_id = pool[int(rng.choice(len(pool), p=weights))]
            scan = scans[track_id]
            start = draw_start(rng, scan.n_samples, n_src, scan.active, sr, config.min_active_fraction)
            noise_id, noise_offset = "", 0
            if snr is not None:
                clip = noise_clips[int(rng.integers(len(noise_clips)))]
                clip_n = int(round(clip.duration_s * sr))
                noise_id = clip.noise_id
                noise_offset = int(rng.integers(0, clip_n - n + 1)) if clip_n > n else 0
            room = room_pool[int(rng.integers(len(room_pool)))] if rt60 is not None else None
            n_db_segments = corpus.protocol.n_segments(scan.n_samples)
            extra = {"transform": transform, "source_samples": n_src} if config.has_transforms else {}
            extra.update({ROLE: role} if config.absent_share else {})
            rows.append({
                "query_id": f"q{len(rows):05d}", "track_id": track_id,
                "start_sample": start, "start_s": start / sr, "duration_s": float(duration),
                "n_samples": n, "true_segment": min(int(round(start / hop)), n_db_segments - 1),
                "snr": snr_label(snr), "snr_db": np.nan if snr is None else float(snr),
                "reverb": reverb_label(rt60),
                "rt60_target_s": np.nan if rt60 is None else float(rt60),
                "rir_id": room.rir_id if room else "",
                "rt60_measured_s": room.rt60_measured if room else np.nan,
                "noise_id": noise_id, "noise_offset_sample": noise_offset,
                "noise_offset_s": noise_offset / sr, "seed": qseed, **extra,
            })
    return pd.DataFrame(rows)


def segment_table(lengths: Mapping[str, int], protocol: Protocol) -> pd.DataFrame:
    """The DB segment table (track_id, segment, start_s) of tracks of the given sample counts."""
    parts = []
    for track_id in sorted(lengths):
        k = protocol.n_segments(lengths[track_id])
        if k:
            parts.append(pd.DataFrame({"track_id": track_id, "segment": np.arange(k, dtype=np.int64),
                                       "start_s": np.arange(k) * protocol.hop_s}))
    if not parts:
        raise ValueError("no track holds a whole DB segment")
    return pd.concat(parts, ignore_index=True)


def _read_render_log(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["query_id"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by an interruption: that query is rendered again
    return done


def _render(manifest: pd.DataFrame, corpus: Corpus, noise: NoiseBank, rooms: RoomBank,
            root: Path, progress: bool) -> dict[str, dict]:
    audio_dir = root / AUDIO_DIR
    audio_dir.mkdir(parents=True, exist_ok=True)
    log_path = root / RENDER_LOG
    done = {q: r for q, r in _read_render_log(log_path).items()
            if (audio_dir / f"{q}.flac").exists()}
    todo = manifest[~manifest["query_id"].isin(done)]
    sr = corpus.protocol.sample_rate
    noise_cache: dict[str, np.ndarray] = {}
    rir_cache: dict[str, np.ndarray] = {}
    with open(log_path, "a") as log, tqdm(total=len(manifest), initial=len(manifest) - len(todo),
                                          desc="render queries", disable=not progress) as bar:
        for track_id, rows in todo.groupby("track_id", sort=True):
            track = corpus.load(track_id)
            for row in rows.itertuples(index=False):
                rir = None
                if row.rir_id:
                    rir = rir_cache.setdefault(row.rir_id, rooms.load(row.rir_id))
                clip = None
                if row.noise_id:
                    clip = noise_cache.setdefault(row.noise_id, noise.load(row.noise_id))
                snr = None if row.snr == "clean" else float(row.snr_db)
                audio, reference = degrade(track, int(row.start_sample), int(row.n_samples), rir,
                                           clip, int(row.noise_offset_sample), snr,
                                           getattr(row, "transform", NONE), sr)
                peak = float(np.max(np.abs(audio)))
                gain = min(1.0, PEAK_HEADROOM / peak) if peak > 0 else 1.0
                pcm = np.round(audio * gain * 32767.0).astype(np.int16)
                snr_meas = (measured_snr_db(reference * gain, pcm / 32767.0) if snr is not None
                            else float("inf"))
                with atomic_path(audio_dir / f"{row.query_id}.flac") as tmp:
                    sf.write(str(tmp), pcm, sr, format="FLAC", subtype="PCM_16")
                rec = {"query_id": row.query_id, "gain": gain, "measured_snr_db": snr_meas}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                done[row.query_id] = rec
                bar.update(1)
    return done


def _content_hash(manifest: pd.DataFrame, segments: pd.DataFrame, root: Path) -> str:
    h = hashlib.sha256()
    h.update(manifest.to_csv(index=False, float_format="%.9g").encode())
    h.update(segments.to_csv(index=False, float_format="%.9g").encode())
    for query_id in manifest["query_id"]:
        path = root / AUDIO_DIR / f"{query_id}.flac"
        try:
            pcm, _ = sf.read(str(path), dtype="int16")
        except (sf.SoundFileError, OSError) as exc:
            raise AudioReadError(f"{path}: cannot decode ({exc})") from exc
        h.update(pcm.tobytes())
    return h.hexdigest()


def _file_names(query_ids: pd.Series) -> list[str]:
    return [MANIFEST, SEGMENTS] + [f"{AUDIO_DIR}/{q}.flac" for q in query_ids]


def _file_digests(root: Path, query_ids: pd.Series) -> dict[str, str]:
    """The sha256 of each file of the query set, by its path relative to ``root``."""
    return {name: file_sha256(root / name) for name in _file_names(query_ids)}


def _damaged_files(root: Path, info: dict) -> list[tuple[str, str]]:
    """(file, what is wrong) for each file whose bytes no longer match the sha256 recorded in ``info``."""
    damaged = []
    for name, digest in sorted(info[DIGESTS].items()):
        try:
            data = (root / name).read_bytes()
        except FileNotFoundError:
            damaged.append((name, f"{name} is missing"))
            continue
        except OSError as exc:
            damaged.append((name, f"{name} cannot be read ({exc})"))
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            damaged.append((name, f"{name} is damaged ({len(data)} bytes; its sha256 differs from the one in {INFO})"))
    return damaged


def _unreproduced_hash(root: Path, info: dict) -> list[tuple[str, str]]:
    """For a query set recorded without per-file digests: [] when its files still give its content hash,
    else one (file, what is wrong)."""
    try:
        manifest, segments = pd.read_parquet(root / MANIFEST), pd.read_parquet(root / SEGMENTS)
        if _content_hash(manifest, segments, root) == info.get("content_hash"):
            return []
    except AudioReadError as exc:
        return [("", str(exc).removeprefix(f"{root}/"))]
    except (OSError, ValueError) as exc:
        return [("", f"{MANIFEST} or {SEGMENTS} cannot be read ({exc})")]
    return [("", f"the files no longer give the content hash recorded in {INFO}")]


def _prepare_repair(root: Path, info: dict, damaged: list[tuple[str, str]]) -> None:
    """Leave ``root`` as an interrupted build that will render only the damaged audio files again, or
    clear it when the manifest, the segment table or which file is damaged is not known."""
    names = {name for name, _ in damaged}
    if DIGESTS not in info or not names or names & {"", MANIFEST, SEGMENTS}:
        _clear(root)
        return
    manifest = pd.read_parquet(root / MANIFEST)
    kept = manifest[~(AUDIO_DIR + "/" + manifest["query_id"] + ".flac").isin(names)]
    log = "".join(json.dumps({"query_id": r.query_id, "gain": r.gain, "measured_snr_db": r.measured_snr_db}) + "\n"
                  for r in kept.itertuples(index=False))
    atomic_write_bytes(root / RENDER_LOG, log.encode())
    for name in names:
        (root / name).unlink(missing_ok=True)
    (root / INFO).unlink()


def _read_info(root: Path) -> dict | None:
    path = root / INFO
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete {root} and build the query set again") from None


def _about(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _warn_if_large(config: QuerySetConfig, protocol: Protocol, root: Path) -> None:
    """Warn, before any work, when the queries still to render exceed LARGE_QUERY_SET, with the hours
    of audio, the disk size and the rendering time they will take."""
    total = config.n_queries()
    audio_dir = root / AUDIO_DIR
    have = sum(1 for _ in os.scandir(audio_dir)) if audio_dir.is_dir() else 0
    todo = total - min(have, total)
    if todo <= LARGE_QUERY_SET:
        return
    seconds = config.audio_seconds() * todo / total
    size_gb = seconds * protocol.sample_rate * FLAC_BYTES_PER_SAMPLE / 1e9
    render_h = seconds / RENDER_AUDIO_S_PER_S / 3600
    warnings.warn(f"{root}: rendering {todo} queries: {_about(seconds / 3600)} h of audio, about {_about(size_gb)} GB "
                  f"of FLAC at {protocol.sample_rate} Hz and about {_about(render_h)} h to render (at "
                  f"{RENDER_AUDIO_S_PER_S:g} s of audio per second); per_cell={config.per_cell} over "
                  f"{total // config.per_cell} conditions. For a smaller set lower per_cell (--per-cell, "
                  f"queries.per_cell); Ctrl-C stops the build and the same command resumes it", stacklevel=4)


def _clear(root: Path) -> None:
    """Remove a previous query set's files from ``root`` (only the files a build writes)."""
    for name in (INFO, MANIFEST, SEGMENTS, RENDER_LOG, ".build_key"):
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / AUDIO_DIR, ignore_errors=True)


def build_queryset(corpus: Corpus, noise: NoiseBank, rooms: RoomBank, config: QuerySetConfig,
                   out_dir: Path | str, progress: bool = True, force: bool = False) -> QuerySet:
    """Build (or resume, or reuse) the query set of ``config`` in ``out_dir``.

    A finished query set is reused when every file still has the sha256 recorded in its queryset.json
    (reading needs no lock). Building, resuming or repairing holds the folder's lock: a second
    process doing so is refused (FolderBusyError naming the holder's PID). A damaged or missing file
    is named on stderr and only the damaged files are rendered again (the build is deterministic).

    Raises ValueError when ``out_dir`` holds a query set of another identity and ``force`` is
    not set, or when no track of the split is long enough for the longest query.
    """
    root = Path(out_dir)
    identity = {"format": FORMAT_VERSION, "config": config.to_dict(), "corpus": corpus.identity(),
                "noise": noise.identity(), "rooms": rooms.identity(), **_library_identity(config)}
    build_key = stable_hash(identity, n=32)
    old = _read_info(root)
    if old and old.get("build_key") == build_key and DIGESTS in old and not _damaged_files(root, old):
        return QuerySet(root, old)
    with folder_lock(root, LOCK_WHAT):
        return _build_locked(corpus, noise, rooms, config, root, build_key, progress, force)


def _library_identity(config: QuerySetConfig) -> dict:
    """The versions of the libraries a transform axis renders with (they change the audio), when
    the grid has one."""
    return {"libraries": library_versions()} if config.has_transforms else {}


def _pools(config: QuerySetConfig, corpus: Corpus, scans: dict[str, _TrackScan], eligible: list[str],
           longest: int,
           progress: bool) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, _TrackScan], list[dict]]:
    """The eligible tracks of each query role (``eligible``: the query split's tracks of at least
    ``longest`` samples); the held-out tracks of the query split and of the calibration split (both
    kept out of every DB); the calibration split's scans and unreadable tracks."""
    if not config.absent_share:
        return {PRESENT: eligible}, {}, {}, []
    held = held_out_tracks(scans, config.absent_share)
    cal_scans, cal_unreadable = _scan_tracks(corpus, CALIBRATION_SPLIT, progress)
    cal_held = held_out_tracks(cal_scans, config.absent_share)
    pools = {PRESENT: [t for t in eligible if t not in held], ABSENT: [t for t in eligible if t in held],
             CALIBRATION: sorted(t for t in cal_held if cal_scans[t].n_samples >= longest)}
    for role, pool in pools.items():
        if not pool:
            split = CALIBRATION_SPLIT if role == CALIBRATION else config.split
            raise ValueError(f"corpus {corpus.name!r}: absent_share={config.absent_share:g} leaves no {role} track "
                             f"in the {split} split ({len(scans if split == config.split else cal_scans)} tracks); "
                             "raise absent_share or use a corpus with more tracks")
    return pools, {config.split: sorted(held), CALIBRATION_SPLIT: sorted(cal_held)}, cal_scans, cal_unreadable


def _longest(config: QuerySetConfig, corpus: Corpus) -> int:
    """Source samples of the longest query of the grid (a sped-up query reads more than it lasts)."""
    n = int(round(max(config.durations) * corpus.protocol.sample_rate))
    return max(source_samples(t, n) for t in config.transforms)


def _build_locked(corpus: Corpus, noise: NoiseBank, rooms: RoomBank, config: QuerySetConfig, root: Path,
                  build_key: str, progress: bool, force: bool) -> QuerySet:
    info_path = root / INFO
    old = _read_info(root)
    if old is not None:
        if old.get("build_key") == build_key:
            damaged = _damaged_files(root, old) if DIGESTS in old else _unreproduced_hash(root, old)
            if not damaged:
                if DIGESTS not in old:
                    old[DIGESTS] = _file_digests(root, pd.read_parquet(root / MANIFEST)["query_id"])
                    atomic_write_json(info_path, old)
                return QuerySet(root, old)
            more = f", and {len(damaged) - 1} more file(s) damaged or missing" if len(damaged) > 1 else ""
            print(f"{root}: {damaged[0][1]}{more}; rebuilding the query set", file=sys.stderr)
            _prepare_repair(root, old, damaged)
        elif not force:
            raise ValueError(f"{root} holds another query set (corpus {old.get('corpus', {}).get('name')},"
                             f" config {old.get('config')}); choose another --out or pass --force")
        else:
            _clear(root)
    key_path = root / ".build_key"
    if key_path.exists() and key_path.read_text().strip() != build_key:
        if not force:
            raise ValueError(f"{root} holds a partial query set of another config; "
                             "choose another --out or pass --force")
        _clear(root)
    _warn_if_large(config, corpus.protocol, root)
    root.mkdir(parents=True, exist_ok=True)
    key_path.write_text(build_key + "\n")

    scans, unreadable = _scan_tracks(corpus, config.split, progress)
    longest = _longest(config, corpus)
    eligible = sorted(t for t, s in scans.items() if s.n_samples >= longest)
    short = sorted(t for t, s in scans.items() if s.n_samples < longest)
    if not scans and not unreadable:
        raise ValueError(f"corpus {corpus.name!r} has no {config.split}-split tracks "
                         f"({len(corpus.tracks())} tracks, split fractions {corpus.split_fractions})")
    if not eligible:
        raise ValueError(f"corpus {corpus.name!r}: no readable {config.split}-split track is at least "
                         f"{max(config.durations):g} s long ({len(short)} too short, "
                         f"{len(unreadable)} unreadable)")
    pools, held_out, cal_scans, cal_unreadable = _pools(config, corpus, scans, eligible, longest, progress)
    manifest = _draw_manifest(config, corpus, {**cal_scans, **scans}, pools, noise, rooms)
    rendered = _render(manifest, corpus, noise, rooms, root, progress)
    manifest["gain"] = [rendered[q]["gain"] for q in manifest["query_id"]]
    manifest["measured_snr_db"] = [rendered[q]["measured_snr_db"] for q in manifest["query_id"]]
    catalogue = set(scans) - set(held_out.get(config.split, []))
    segments = segment_table({t: s.n_samples for t, s in scans.items() if t in catalogue}, corpus.protocol)
    atomic_write_parquet(root / MANIFEST, manifest)
    atomic_write_parquet(root / SEGMENTS, segments)

    cell_columns = ["duration_s", "snr", "reverb"] + (["transform"] if config.has_transforms else [])
    cells = manifest.groupby(cell_columns, sort=False).size()
    info = {
        "format": FORMAT_VERSION, "build_key": build_key,
        "content_hash": _content_hash(manifest, segments, root),
        "config": config.to_dict(), "protocol": corpus.protocol.to_dict(),
        "corpus": {"name": corpus.name, "identity_hash": stable_hash(corpus.identity(), n=32),
                   "tracks_total": len(corpus.tracks()),
                   "tracks_in_split": len(scans) + len(unreadable)},
        "noise": {"identity_hash": stable_hash(noise.identity(), n=32),
                  "clips_used": sorted(set(manifest["noise_id"]) - {""})},
        "rooms": {"identity_hash": stable_hash(rooms.identity(), n=32),
                  "rirs_used": sorted(set(manifest["rir_id"]) - {""})},
        "counts": {
            "queries": int(len(manifest)),
            "per_cell": {"/".join([f"{key[0]:g}s", *map(str, key[1:])]): int(c) for key, c in cells.items()},
            "tracks_queried": int(manifest["track_id"].nunique()),
            "tracks_eligible": len(eligible),
            "tracks_excluded_short": {"count": len(short), "track_ids": short},
            "tracks_unreadable": {"count": len(unreadable), "items": unreadable},
            "files_skipped": {"count": len(corpus.skipped),
                              "items": [asdict(s) for s in corpus.skipped]},
            "db_tracks": int(segments["track_id"].nunique()),
            "db_segments": int(len(segments)),
            "audio_seconds": float(manifest["duration_s"].sum()),
        },
        **({"open_set": {"absent_share": config.absent_share, "held_out_tracks": held_out,
                         "roles": {r: int(c) for r, c in manifest[ROLE].value_counts().sort_index().items()},
                         "calibration_unreadable": cal_unreadable}} if config.absent_share else {}),
        **_library_identity(config),
        "files": {"manifest": MANIFEST, "segments": SEGMENTS, "audio": f"{AUDIO_DIR}/<query_id>.flac"},
        DIGESTS: _file_digests(root, manifest["query_id"]),
    }
    atomic_write_json(info_path, info)
    key_path.unlink(missing_ok=True)
    (root / RENDER_LOG).unlink(missing_ok=True)
    return QuerySet(root, info)


def default_queryset_dir(corpus: Corpus, config: QuerySetConfig, noise: NoiseBank, rooms: RoomBank) -> Path:
    """The cache folder a query set of ``config`` on ``corpus`` with these noise and room banks lives in
    when no --out is given (each bank's identity is part of the key: another bank, another query set)."""
    key = stable_hash([config.to_dict(), corpus.identity(), noise.identity(), rooms.identity()])
    return cache_dir("querysets", f"{corpus.name}-{key}")


def load_queryset(root: Path | str) -> QuerySet:
    """Open a built query set; a clear error when ``root`` holds none."""
    root = Path(root)
    info_path = root / INFO
    if not info_path.exists():
        raise FileNotFoundError(f"{root}: no {INFO}; build it with `python -m bench queries --out {root}`")
    return QuerySet(root, json.loads(info_path.read_text()))
