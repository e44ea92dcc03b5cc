"""Room impulse responses: simulated shoebox rooms (pyroomacoustics) or a folder of measured RIRs.

Every RIR the bank hands out is mono float32 at the protocol rate, starts at its direct-path
peak (sample 0, value 1.0, so reverberation never shifts a query's timing) and ends where its
energy decay curve passes -60 dB (or at a length cap). Its RT60 is *measured* from the RIR
itself (Schroeder backward integration, T20 extrapolated to 60 dB) and stored beside the
target: image-source shoebox rooms do not decay at the Sabine rate the target asks for, so
the simulator calibrates each room's absorption until the measured RT60 is near the target.

Simulated banks are cached on disk under ``cache_dir("rooms", <hash of identity>)``: one
``.npy`` per RIR plus one ``.json`` of its metadata (both written atomically, the json last),
and a ``bank.json`` once the bank is complete. An interrupted build resumes where it stopped.
"""
from __future__ import annotations

import itertools
import json
import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from datasets.corpora.corpus import Skipped

from .audio_io import AudioReadError, find_audio_files, read_audio, warn_skip
from .cache import atomic_save_npy, atomic_write_json, cache_dir, stable_hash
from .protocol import Protocol
from .splits import SPLITS, stratified_splits

GENERATOR_VERSION = 1
"""Bump when the simulation or the post-processing changes what a seed produces."""

DEFAULT_RT60_LEVELS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (0.6, 0.0, 0.4)

# Room size classes: (length range m, height range m). The width is the length divided by an
# aspect ratio in [1, MAX_ASPECT], so no room is long and narrow (those overshoot the target
# RT60: energy lingers in the axial modes of the short dimensions).
ROOM_SIZE_CLASSES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "small": ((3.0, 4.5), (2.4, 2.8)),
    "medium": ((5.0, 7.0), (2.6, 3.2)),
    "large": ((8.0, 11.0), (3.0, 3.8)),
}
MAX_ASPECT = 1.5
WALL_MARGIN_M = 0.5
SOURCE_MIC_DISTANCE_M = (1.0, 4.0)
MAX_RIR_S = 2.0          # length cap of a stored RIR
TAIL_DB = 60.0           # the tail is cut where the energy decay curve passes -TAIL_DB
CALIBRATION_TOL = 0.03   # relative RT60 error at which calibration stops...
CALIBRATION_TOL_S = 0.01  # ...or absolute error (short RT60s measure +-0.01 s apart run to run)
CALIBRATION_ITERS = 5
CALIBRATION_ORDER = 0.6  # calibration runs: reflections up to 0.6 x RT60 (-36 dB; T20 needs -25)
FINAL_ORDER = 1.0        # the stored RIR has every reflection up to 1.0 x RT60 (-60 dB)


class RoomBankError(ValueError):
    """A room bank cannot answer a request (no room near an RT60, unknown id, bad spec)."""


@dataclass(frozen=True)
class RoomIR:
    """One room impulse response of a bank."""

    rir_id: str
    rt60_target: float | None
    rt60_measured: float
    room_dim: tuple[float, float, float] | None
    split: str


# --------------------------------------------------------------------------- measurement


def energy_decay_db(rir: np.ndarray) -> np.ndarray:
    """Schroeder energy decay curve in dB, 0 dB at the first sample (-inf after the last energy)."""
    power = np.asarray(rir, dtype=np.float64) ** 2
    edc = np.cumsum(power[::-1])[::-1]
    total = edc[0] if edc.size else 0.0
    if total <= 0:
        raise ValueError("impulse response holds no energy")
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(edc / total)


def _noise_crosspoint(power: np.ndarray, sample_rate: int, block_s: float = 0.01) -> tuple[int, float]:
    """Where the smoothed envelope first reaches the noise floor (mean power of the last 10%) + 3 dB,
    and the envelope's range from its peak down to that floor, in dB.

    Integrating past that point would add the noise floor's energy to the decay curve and
    flatten it; for a noise-free RIR the point lies in its last few dB and changes nothing.
    """
    n = power.size
    block = max(1, int(round(block_s * sample_rate)))
    if n < 10 * block:
        return n, math.inf
    noise = float(power[int(0.9 * n):].mean())
    n_blocks = n // block
    env = power[: n_blocks * block].reshape(n_blocks, block).mean(axis=1)
    peak_block = int(np.argmax(env))
    if noise <= 0:
        return n, math.inf
    below = np.nonzero(env[peak_block:] <= noise * 10 ** 0.3)[0]
    cross = n if below.size == 0 else min(n, (peak_block + int(below[0]) + 1) * block)
    return cross, float(10 * np.log10(env[peak_block] / noise))


def measure_rt60(rir: np.ndarray, sample_rate: int, decay_db: float = 20.0) -> float:
    """Reverberation time of an impulse response, in seconds.

    Schroeder backward integration from the onset (first sample within 20 dB of the peak)
    up to the noise-floor crosspoint, a least-squares line through the decay curve from
    -5 dB to -(5 + ``decay_db``) dB (T20 by default, as in ISO 3382), extrapolated to 60 dB.
    Where the curve does not reach that far, the fit falls back to -5..-15 dB (T10).
    Raises ValueError when the response has less than 15 dB of decay (above its noise floor).
    """
    h = np.asarray(rir, dtype=np.float64).ravel()
    if h.size < 2 or not np.all(np.isfinite(h)):
        raise ValueError("impulse response must be a finite 1-D signal of 2 or more samples")
    power = h**2
    peak = float(power.max())
    if peak <= 0:
        raise ValueError("impulse response holds no energy")
    onset = int(np.argmax(power >= peak * 1e-2))
    power = power[onset:]
    cross, dynamic_range = _noise_crosspoint(power, sample_rate)
    if dynamic_range < 15.0:
        raise ValueError(f"impulse response decays by only {dynamic_range:.1f} dB above its noise "
                         "floor (need 15 dB or more to measure RT60)")
    power = power[:cross]
    edc = np.cumsum(power[::-1])[::-1]
    with np.errstate(divide="ignore"):
        edc_db = 10.0 * np.log10(edc / edc[0])
    for span in (decay_db, 10.0):
        lo, hi = -5.0, -5.0 - span
        if np.any(edc_db <= hi):
            i0 = int(np.argmax(edc_db <= lo))
            i1 = int(np.argmax(edc_db <= hi))
            if i1 - i0 >= 2:
                t = np.arange(i0, i1 + 1) / sample_rate
                slope = np.polyfit(t, edc_db[i0:i1 + 1], 1)[0]
                if slope < 0:
                    return float(-60.0 / slope)
    raise ValueError(f"impulse response decays by only {-edc_db[np.isfinite(edc_db)].min():.1f} dB "
                     "(need 15 dB or more to measure RT60)")


# --------------------------------------------------------------------------- post-processing


def direct_path_index(rir: np.ndarray, sample_rate: int, hint: int | None = None) -> int:
    """Index of the direct-path peak.

    With ``hint`` (the expected arrival, e.g. from the geometry) the largest magnitude within
    +-0.5 ms of it; otherwise the largest magnitude within 1 ms after the first sample that
    reaches half the overall peak (a strong late reflection cannot pass for the direct path).
    """
    mag = np.abs(np.asarray(rir, dtype=np.float64))
    win = max(1, int(round(1e-3 * sample_rate)))
    if hint is not None:
        lo = max(0, hint - win // 2)
        hi = min(mag.size, hint + win // 2 + 1)
        if lo < hi:
            return lo + int(np.argmax(mag[lo:hi]))
    onset = int(np.argmax(mag >= 0.5 * mag.max()))
    return onset + int(np.argmax(mag[onset:onset + win + 1]))


def normalize_rir(rir: np.ndarray, sample_rate: int, direct_index: int | None = None,
                  max_len_s: float = MAX_RIR_S, tail_db: float = TAIL_DB) -> np.ndarray:
    """Trim and scale a RIR: direct-path peak at sample 0 with value +1.0, tail cut at -``tail_db``.

    ``direct_index`` defaults to :func:`direct_path_index`. The tail ends where the Schroeder
    decay curve (from the direct path on) first falls below -``tail_db`` dB, or at ``max_len_s``.
    """
    h = np.asarray(rir, dtype=np.float64).ravel()
    if h.size == 0 or not np.any(h):
        raise ValueError("impulse response is empty or all zeros")
    d = direct_path_index(h, sample_rate) if direct_index is None else int(direct_index)
    h = h[d:]
    h = h / h[0]
    edc_db = energy_decay_db(h)
    below = np.nonzero(edc_db < -tail_db)[0]
    end = int(below[0]) if below.size else h.size
    end = max(1, min(end, int(round(max_len_s * sample_rate))))
    return np.ascontiguousarray(h[:end], dtype=np.float32)


# --------------------------------------------------------------------------- simulation


def _room_rng(seed: int, rt60_target: float, index: int) -> np.random.Generator:
    key = stable_hash({"v": GENERATOR_VERSION, "seed": seed, "rt60": round(rt60_target, 4),
                       "index": index})
    return np.random.default_rng(int(key, 16))


def _draw_geometry(rng: np.random.Generator, size_class: str) -> dict:
    """Room dimensions, source and mic positions (>= WALL_MARGIN_M from walls, 1-4 m apart)."""
    (l_lo, l_hi), (h_lo, h_hi) = ROOM_SIZE_CLASSES[size_class]
    length = rng.uniform(l_lo, l_hi)
    width = length / rng.uniform(1.0, MAX_ASPECT)
    height = rng.uniform(h_lo, h_hi)
    dim = np.array([length, width, height])
    lo = np.full(3, WALL_MARGIN_M)
    hi = dim - WALL_MARGIN_M
    d_lo, d_hi = SOURCE_MIC_DISTANCE_M
    for _ in range(10000):
        src = rng.uniform(lo, hi)
        mic = rng.uniform(lo, hi)
        dist = float(np.linalg.norm(src - mic))
        if d_lo <= dist <= d_hi:
            break
    else:  # pragma: no cover - every size class admits 1-4 m
        raise RuntimeError(f"no source/mic placement 1-4 m apart in a {dim} room")
    return {"room_dim": [round(float(x), 4) for x in dim],
            "source": [round(float(x), 4) for x in src],
            "mic": [round(float(x), 4) for x in mic],
            "size_class": size_class}


def ism_order(rt60: float, room_dim: Sequence[float]) -> int:
    """The image-source order ``pra.inverse_sabine`` gives for ``rt60``, without its absorption check.

    It is the order whose image 'diamond' holds a sphere of radius c * rt60: every reflection
    arriving before ``rt60`` is simulated.
    """
    import pyroomacoustics as pra

    radius = min(a * b / math.hypot(a, b) for a, b in itertools.combinations(room_dim, 2))
    return max(0, int(math.ceil(pra.constants.get("c") * rt60 / radius - 1)))


def _simulate_once(geom: Mapping, sample_rate: int, design_rt60: float, order_rt60: float
                   ) -> tuple[np.ndarray, int, float, int]:
    """One image-source simulation; returns (raw rir, direct-path index hint, absorption, order)."""
    import pyroomacoustics as pra

    dim = list(geom["room_dim"])
    absorption, _ = pra.inverse_sabine(design_rt60, dim)
    max_order = ism_order(order_rt60, dim)
    room = pra.ShoeBox(dim, fs=sample_rate, materials=pra.Material(float(absorption)),
                       max_order=int(max_order))
    room.add_source(list(geom["source"]))
    room.add_microphone(list(geom["mic"]))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    dist = float(np.linalg.norm(np.subtract(geom["source"], geom["mic"])))
    hint = int(round(dist / pra.constants.get("c") * sample_rate)) \
        + pra.constants.get("frac_delay_length") // 2
    return rir, hint, float(absorption), int(max_order)


def simulate_room(rir_id: str, rt60_target: float, index: int, seed: int, sample_rate: int
                  ) -> tuple[np.ndarray, dict]:
    """Simulate one shoebox room for a target RT60: a pure function of its arguments.

    The absorption comes from ``pra.inverse_sabine`` for a *design* RT60 that is calibrated
    (multiplicative steps by the target/measured ratio) until the RIR's measured RT60 is within
    CALIBRATION_TOL (or CALIBRATION_TOL_S) of the target. Calibration runs use the reflection
    order ``inverse_sabine`` gives for 0.6x the RT60 (down to about -36 dB, enough for the T20
    fit); the final run the order for the longer of target and design RT60, so the tail is
    complete down to -60 dB.
    Returns the normalised RIR and its metadata.
    """
    rng = _room_rng(seed, rt60_target, index)
    size_class = list(ROOM_SIZE_CLASSES)[index % len(ROOM_SIZE_CLASSES)]
    geom = _draw_geometry(rng, size_class)
    design = _max_design(rt60_target, geom["room_dim"])
    history: list[tuple[float, float]] = []
    for _ in range(CALIBRATION_ITERS):
        raw, hint, _, _ = _simulate_once(geom, sample_rate, design,
                                         CALIBRATION_ORDER * max(design, rt60_target))
        rir = normalize_rir(raw, sample_rate, direct_path_index(raw, sample_rate, hint))
        measured = measure_rt60(rir, sample_rate)
        history.append((round(design, 5), round(measured, 5)))
        if abs(measured - rt60_target) <= max(CALIBRATION_TOL * rt60_target, CALIBRATION_TOL_S):
            break
        ratio = float(np.clip(rt60_target / measured, 0.5, 2.0))
        design = _max_design(design * ratio, geom["room_dim"])
    # keep the design whose measurement came closest
    design = min(history, key=lambda dm: abs(dm[1] / rt60_target - 1.0))[0]
    raw, hint, absorption, max_order = _simulate_once(geom, sample_rate, design,
                                                      FINAL_ORDER * max(design, rt60_target))
    direct = direct_path_index(raw, sample_rate, hint)
    rir = normalize_rir(raw, sample_rate, direct)
    meta = dict(geom)
    meta.update({
        "rir_id": rir_id, "rt60_target": rt60_target, "index": index,
        "rt60_measured": round(measure_rt60(rir, sample_rate), 5),
        "design_rt60": design, "absorption": round(absorption, 6), "max_order": max_order,
        "distance_m": round(float(np.linalg.norm(np.subtract(geom["source"], geom["mic"]))), 4),
        "n_samples": int(rir.size), "calibration": history,
    })
    return rir, meta


def _max_design(design: float, room_dim: Sequence[float]) -> float:
    """Raise a design RT60 until inverse_sabine's absorption is below 1 (short RT60s, big rooms)."""
    import pyroomacoustics as pra

    for _ in range(50):
        try:
            pra.inverse_sabine(design, list(room_dim))
            return design
        except ValueError:
            design *= 1.05
    return design


def _simulate_job(job: tuple[str, float, int, int, int]) -> tuple[str, np.ndarray, dict]:
    rir_id, target, index, seed, sr = job
    rir, meta = simulate_room(rir_id, target, index, seed, sr)
    return rir_id, rir, meta


# --------------------------------------------------------------------------- banks


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")


class RoomBank:
    """Base class: a set of RIRs with measured RT60s, split train/val/test by RT60 level."""

    name = "rooms"

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self._rooms: dict[str, RoomIR] = {}
        self.skipped: list[Skipped] = []

    def rooms(self, split: str | None = None) -> list[RoomIR]:
        """Rooms in id order, optionally only those of one split ('train', 'val', 'test')."""
        _check_split(split)
        out = [self._rooms[k] for k in sorted(self._rooms)]
        return out if split is None else [r for r in out if r.split == split]

    def room(self, rir_id: str) -> RoomIR:
        """One room by id."""
        try:
            return self._rooms[rir_id]
        except KeyError:
            raise KeyError(f"room bank {self.name!r} has no RIR {rir_id!r}") from None

    def near(self, rt60: float, split: str, tolerance: float = 0.1) -> list[RoomIR]:
        """Rooms of ``split`` whose measured RT60 is within ``tolerance`` s of ``rt60``, closest first.

        Raises RoomBankError naming the value and the range the split offers when none is.
        """
        candidates = self.rooms(split)
        out = [r for r in candidates if abs(r.rt60_measured - rt60) <= tolerance]
        if not out:
            if candidates:
                lo = min(r.rt60_measured for r in candidates)
                hi = max(r.rt60_measured for r in candidates)
                have = f"its {len(candidates)} rooms measure RT60 {lo:.2f}-{hi:.2f} s"
            else:
                have = "it holds no rooms"
            raise RoomBankError(f"no room in split {split!r} of bank {self.name!r} has a measured "
                                f"RT60 within +-{tolerance:g} s of {rt60:g} s; {have}")
        return sorted(out, key=lambda r: (abs(r.rt60_measured - rt60), r.rir_id))

    def load(self, rir_id: str) -> np.ndarray:
        """The RIR as float32 at the protocol rate, direct-path peak 1.0 at sample 0."""
        raise NotImplementedError

    def identity(self) -> dict:
        """What defines this bank's content, for cache keys and query-set hashes."""
        raise NotImplementedError


class SimulatedRoomBank(RoomBank):
    """Shoebox rooms simulated with pyroomacoustics, ``rooms_per_level`` per target RT60.

    Room ``k`` of a level is a pure function of (seed, target RT60, k, sample rate): its size
    class cycles small / medium / large, its dimensions and source/mic positions are drawn from
    a generator seeded by those values. The bank is built (or read from the cache) on
    construction, ``workers`` processes in parallel.
    """

    name = "simulated"

    def __init__(self, protocol: Protocol = Protocol(),
                 rt60_levels: Iterable[float] = DEFAULT_RT60_LEVELS, rooms_per_level: int = 4,
                 seed: int = 0, progress: bool = True, workers: int = 2,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> None:
        super().__init__(protocol)
        self.rt60_levels = tuple(sorted({round(float(x), 4) for x in rt60_levels}))
        if not self.rt60_levels or any(not 0.05 <= x <= 5.0 for x in self.rt60_levels):
            raise ValueError(f"rt60_levels={rt60_levels}: need one or more values in 0.05..5 s")
        if rooms_per_level < 1:
            raise ValueError(f"rooms_per_level={rooms_per_level}: need >= 1")
        self.rooms_per_level = int(rooms_per_level)
        self.seed = int(seed)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        self.simulated_count = 0  # rooms simulated by this instance (0 on a full cache hit)
        self.cache_path = cache_dir("rooms", stable_hash(self.identity()))
        self._meta: dict[str, dict] = {}
        self._build(progress, workers)

    @staticmethod
    def rir_id(rt60_target: float, index: int) -> str:
        """Id of room ``index`` of an RT60 level, e.g. 'sim-room/rt0.6-02'."""
        level = f"{rt60_target:.2f}"
        if level.endswith("0"):
            level = level[:-1]
        return f"sim-room/rt{level}-{index:02d}"

    def identity(self) -> dict:
        """Generator version, pyroomacoustics version, protocol rate, levels, count, seed, splits."""
        import pyroomacoustics as pra

        return {"bank": "simulated-rooms", "generator_version": GENERATOR_VERSION,
                "pyroomacoustics": pra.__version__, "sample_rate": self.protocol.sample_rate,
                "rt60_levels": list(self.rt60_levels), "rooms_per_level": self.rooms_per_level,
                "seed": self.seed, "splits": list(self.split_fractions)}

    def _paths(self, rir_id: str) -> tuple[Path, Path]:
        name = rir_id.split("/", 1)[1]  # ids hold dots ('rt0.6-02'): append, never with_suffix
        return self.cache_path / f"{name}.npy", self.cache_path / f"{name}.json"

    def _build(self, progress: bool, workers: int) -> None:
        sr = self.protocol.sample_rate
        jobs = [(self.rir_id(level, k), level, k, self.seed, sr)
                for level in self.rt60_levels for k in range(self.rooms_per_level)]
        bank_json = self.cache_path / "bank.json"
        if bank_json.exists():
            try:
                done = json.loads(bank_json.read_text())["rooms"]
                if all(self._paths(m["rir_id"])[0].exists() for m in done) and \
                        {m["rir_id"] for m in done} == {j[0] for j in jobs}:
                    self._meta = {m["rir_id"]: m for m in done}
            except (OSError, ValueError, KeyError):
                self._meta = {}
        if not self._meta:
            todo = []
            for job in jobs:
                npy, meta_path = self._paths(job[0])
                try:
                    if npy.exists():
                        self._meta[job[0]] = json.loads(meta_path.read_text())
                        continue
                except (OSError, ValueError):
                    pass
                todo.append(job)
            if todo:
                self._run(todo, progress, workers)
            atomic_write_json(bank_json, {"identity": self.identity(),
                                          "rooms": [self._meta[j[0]] for j in jobs]})
        strata = [(rid, f"{m['rt60_target']:.4f}") for rid, m in self._meta.items()]
        splits = stratified_splits(strata, self.split_fractions, salt="room")
        self._rooms = {rid: RoomIR(rid, float(m["rt60_target"]), float(m["rt60_measured"]),
                                   tuple(m["room_dim"]), splits[rid])
                       for rid, m in self._meta.items()}

    def _run(self, todo: list, progress: bool, workers: int) -> None:
        from datasets.progress import tqdm

        pool = None
        if workers > 1 and len(todo) > 1:
            # 'fork' where there is one (the workers only run numpy and pyroomacoustics, and a
            # script without a __main__ guard still works); the pool starts before tqdm's thread
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            pool = ctx.Pool(min(workers, len(todo)))
            todo = sorted(todo, key=lambda j: -j[1])  # longest first: the pool does not end on one
        bar = tqdm(total=len(todo), desc="simulating rooms", unit="room", disable=not progress)
        try:
            results = pool.imap_unordered(_simulate_job, todo) if pool else map(_simulate_job, todo)
            for rir_id, rir, meta in results:
                npy, meta_path = self._paths(rir_id)
                atomic_save_npy(npy, rir)
                atomic_write_json(meta_path, meta)  # written last: it marks a finished room
                self._meta[rir_id] = meta
                self.simulated_count += 1
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()

    def meta(self, rir_id: str) -> dict:
        """The simulation record of one room: geometry, absorption, order, calibration history."""
        self.room(rir_id)
        return dict(self._meta[rir_id])

    def load(self, rir_id: str) -> np.ndarray:
        """The cached RIR (float32, direct-path peak 1.0 at sample 0)."""
        self.room(rir_id)
        npy, _ = self._paths(rir_id)
        try:
            return np.load(npy, allow_pickle=False)
        except (OSError, ValueError):  # removed or damaged since the build: simulate it again
            room = self._meta[rir_id]
            rir, _ = simulate_room(rir_id, room["rt60_target"], room["index"], self.seed,
                                   self.protocol.sample_rate)
            atomic_save_npy(npy, rir)
            return rir


class FolderRoomBank(RoomBank):
    """Measured RIRs from any folder of audio files (read at the protocol rate, mono).

    Each file is trimmed and normalised like a simulated RIR and its RT60 measured; ids are
    the relative path without extension. Unreadable files, and files whose decay cannot be
    measured, are skipped with a warning and recorded in ``skipped``. Splits are stratified
    by RT60 level: the measured RT60 rounded to ``level_width_s``.
    """

    name = "folder"

    def __init__(self, root: Path | str, protocol: Protocol = Protocol(), level_width_s: float = 0.2,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> None:
        super().__init__(protocol)
        self.root = Path(root)
        self.level_width_s = float(level_width_s)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        self._rirs: dict[str, np.ndarray] = {}
        sr = protocol.sample_rate
        measured: dict[str, float] = {}
        for path in find_audio_files(self.root):
            rir_id = path.relative_to(self.root).with_suffix("").as_posix()
            if rir_id in self._rirs:
                self._skip(path, f"duplicate id {rir_id!r} (another file has the same name)")
                continue
            try:
                rir = normalize_rir(read_audio(path, sr), sr)
                rt60 = measure_rt60(rir, sr)
            except (AudioReadError, ValueError) as exc:
                self._skip(path, str(exc))
                continue
            self._rirs[rir_id] = rir
            measured[rir_id] = rt60
        if not self._rirs:
            raise RoomBankError(f"{self.root}: no usable impulse responses"
                                + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))
        strata = [(rid, str(round(rt / self.level_width_s))) for rid, rt in measured.items()]
        splits = stratified_splits(strata, self.split_fractions, salt="room")
        self._rooms = {rid: RoomIR(rid, None, float(rt), None, splits[rid])
                       for rid, rt in measured.items()}

    def _skip(self, path: Path, reason: str) -> None:
        warn_skip(path, reason)
        self.skipped.append(Skipped(str(path), reason))

    def identity(self) -> dict:
        """Ids, lengths and measured RT60s of the RIRs, the protocol rate and the splits."""
        return {"bank": "folder-rooms", "generator_version": GENERATOR_VERSION,
                "sample_rate": self.protocol.sample_rate, "splits": list(self.split_fractions),
                "level_width_s": self.level_width_s,
                "rooms": [(r.rir_id, int(self._rirs[r.rir_id].size), round(r.rt60_measured, 4))
                          for r in self.rooms()]}

    def load(self, rir_id: str) -> np.ndarray:
        """The RIR (float32, direct-path peak 1.0 at sample 0); a copy, safe to modify."""
        self.room(rir_id)
        return self._rirs[rir_id].copy()


def open_room_bank(spec: str, protocol: Protocol = Protocol(), progress: bool = True, **kwargs) -> RoomBank:
    """A room bank from a spec: 'simulated' (the default bank) or the path of a folder of RIRs.

    Extra keyword arguments go to the bank's constructor; ``progress=False`` hides the bar of
    the simulated bank's first build.
    """
    if spec == "simulated":
        return SimulatedRoomBank(protocol, progress=progress, **kwargs)
    path = Path(spec).expanduser()
    if path.is_dir():
        return FolderRoomBank(path, protocol, **kwargs)
    raise RoomBankError(f"room bank spec {spec!r}: expected 'simulated' or an existing folder of "
                        f"impulse-response audio files ({path} is not a directory)")
