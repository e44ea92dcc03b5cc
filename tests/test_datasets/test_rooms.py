"""Room banks: RT60 measurement, simulated rooms (RT60, alignment, cache, splits), folder loader."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from datasets.protocol import Protocol
from datasets.rooms import (
    FolderRoomBank,
    RoomBankError,
    RoomIR,
    SimulatedRoomBank,
    energy_decay_db,
    measure_rt60,
    normalize_rir,
    open_room_bank,
)
from tests.helpers import decaying_noise

SR = 8000
LEVELS = (0.3, 0.7)




@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small simulated bank (2 levels x 2 rooms, two worker processes) in its own cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(root))
        bank = SimulatedRoomBank(Protocol(), rt60_levels=LEVELS, rooms_per_level=2, seed=0,
                                 progress=False, workers=2)
    return bank, root


# --------------------------------------------------------------------------- measurement


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_measure_rt60_exponential_decay(rt60):
    h = decaying_noise(rt60, SR, 2 * rt60, seed=1)
    assert measure_rt60(h, SR) == pytest.approx(rt60, rel=0.05)
    # a noise floor 45 dB down barely moves the estimate (the integration stops at the floor)
    floor = 10 ** (-45 / 20) * np.random.default_rng(2).standard_normal(SR)
    assert measure_rt60(np.concatenate([h, floor]), SR) == pytest.approx(rt60, rel=0.07)


def test_measure_rt60_rejects_degenerate():
    with pytest.raises(ValueError):
        measure_rt60(np.zeros(100), SR)
    with pytest.raises(ValueError, match="decays by only"):
        measure_rt60(np.ones(SR), SR)


def test_normalize_rir_aligns_and_trims():
    h = np.concatenate([np.zeros(37), -0.5 * decaying_noise(0.4, SR, 1.0, seed=3)])
    h[37] = -2.0  # direct path (negative polarity)
    out = normalize_rir(h, SR)
    assert out.dtype == np.float32 and out[0] == 1.0
    full = energy_decay_db(h[37:])
    assert full[out.size - 1] >= -60 > full[out.size]  # cut where the decay passes -60 dB
    assert 0.35 * SR < out.size < 0.45 * SR  # 60 dB of decay take one RT60 (0.4 s)
    # a strong late reflection is not taken for the direct path
    h2 = np.zeros(SR)
    h2[100], h2[400] = 0.6, 1.0
    h2[101:] += 0.01 * decaying_noise(0.3, SR, (SR - 101) / SR)
    assert normalize_rir(h2, SR, direct_index=100)[0] == 1.0
    assert normalize_rir(h2, SR, direct_index=100).size > 300


# --------------------------------------------------------------------------- simulated bank


def test_simulated_rooms_near_target(built):
    bank, _ = built
    rooms = bank.rooms()
    assert len(rooms) == len(LEVELS) * 2 and all(isinstance(r, RoomIR) for r in rooms)
    for room in rooms:
        assert room.rt60_target in LEVELS
        assert room.rt60_measured == pytest.approx(room.rt60_target, rel=0.1, abs=0.02), room
        assert len(room.room_dim) == 3
        dims = sorted(room.room_dim[:2])
        assert dims[1] / dims[0] <= 1.5 + 1e-6  # not long and narrow
        meta = bank.meta(room.rir_id)
        assert 1.0 <= meta["distance_m"] <= 4.0
        for pos in (meta["source"], meta["mic"]):
            assert all(0.5 <= p <= d - 0.5 for p, d in zip(pos, meta["room_dim"]))
    assert bank.rooms()[0].rir_id == "sim-room/rt0.3-00"


def test_simulated_rir_direct_path_at_zero(built):
    bank, _ = built
    for room in bank.rooms():
        h = bank.load(room.rir_id)
        assert h.dtype == np.float32 and h.ndim == 1
        assert h[0] == 1.0
        assert np.all(np.abs(h[1:SR // 1000]) < 1.0)  # nothing as loud within 1 ms after it
        edc = energy_decay_db(h)
        assert edc[int(0.9 * h.size)] < -40  # the tail decays to the end...
        assert 0.8 * room.rt60_measured < h.size / SR < 1.5 * room.rt60_measured  # ...in ~one RT60
        # the stored RT60 is that of the stored RIR
        assert measure_rt60(h, SR) == pytest.approx(room.rt60_measured, rel=1e-3)


def test_simulated_bank_cache_hit_and_resume(built, monkeypatch):
    bank, root = built
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(root))
    files = sorted(bank.cache_path.iterdir())
    assert {p.suffix for p in files} == {".npy", ".json"}
    assert len([p for p in files if p.suffix == ".npy"]) == 4
    assert (bank.cache_path / "bank.json").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = SimulatedRoomBank(Protocol(), rt60_levels=LEVELS, rooms_per_level=2, seed=0, progress=False)
    assert again.simulated_count == 0
    assert again.cache_path == bank.cache_path
    assert again.rooms() == bank.rooms()
    assert {p: p.stat().st_mtime_ns for p in sorted(bank.cache_path.iterdir())} == mtimes
    # an interrupted build (one room and the bank record missing) resumes with that room only,
    # and simulates it to the same bytes
    rir_id = "sim-room/rt0.3-01"
    before = bank.load(rir_id)
    (bank.cache_path / "rt0.3-01.npy").unlink()
    (bank.cache_path / "rt0.3-01.json").unlink()
    (bank.cache_path / "bank.json").unlink()
    resumed = SimulatedRoomBank(Protocol(), rt60_levels=LEVELS, rooms_per_level=2, seed=0, progress=False)
    assert resumed.simulated_count == 1
    assert resumed.load(rir_id).tobytes() == before.tobytes()
    assert resumed.rooms() == bank.rooms()


def test_simulated_splits_stratified(built):
    bank, _ = built
    ids = {s: {r.rir_id for r in bank.rooms(s)} for s in ("train", "val", "test")}
    assert ids["train"].isdisjoint(ids["test"]) and not ids["val"]
    assert set().union(*ids.values()) == {r.rir_id for r in bank.rooms()}
    for level in LEVELS:
        assert any(r.rt60_target == level for r in bank.rooms("test"))
        assert any(r.rt60_target == level for r in bank.rooms("train"))
    with pytest.raises(ValueError, match="unknown split"):
        bank.rooms("dev")


def test_near(built):
    bank, _ = built
    found = bank.near(0.7, "test")
    assert found and all(abs(r.rt60_measured - 0.7) <= 0.1 and r.split == "test" for r in found)
    with pytest.raises(RoomBankError, match=r"within \+-0.1 s of 2\.5 s.*RT60 0\.\d\d-0\.\d\d s"):
        bank.near(2.5, "test")
    with pytest.raises(RoomBankError, match="holds no rooms"):
        bank.near(0.3, "val")
    with pytest.raises(KeyError, match="no RIR"):
        bank.load("sim-room/rt9.9-00")


def test_identity_and_open(built):
    bank, _ = built
    ident = bank.identity()
    assert ident["generator_version"] >= 1 and ident["rt60_levels"] == list(LEVELS)
    assert ident["sample_rate"] == SR
    with pytest.raises(RoomBankError, match="'simulated' or an existing folder"):
        open_room_bank("nowhere/at/all", Protocol())


# --------------------------------------------------------------------------- folder bank


def test_folder_room_bank(tmp_path):
    root = tmp_path / "rirs"
    (root / "hall").mkdir(parents=True)
    sr_file = 16000
    rir = np.concatenate([1e-4 * np.random.default_rng(4).standard_normal(160),
                          0.8 * decaying_noise(0.5, sr_file, 1.2, seed=5)])
    rir[160] = 0.9  # direct path, 10 ms in
    sf.write(root / "hall" / "big.wav", rir, sr_file, subtype="FLOAT")
    sf.write(root / "booth.flac", 0.5 * decaying_noise(0.25, SR, 0.5, seed=6), SR)
    (root / "hall" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 4)
    with pytest.warns(UserWarning, match="corrupt.wav"):
        bank = FolderRoomBank(root, Protocol())
    assert [r.rir_id for r in bank.rooms()] == ["booth", "hall/big"]
    assert [s.path.rsplit("/", 1)[-1] for s in bank.skipped] == ["corrupt.wav"]
    big = bank.room("hall/big")
    assert big.rt60_target is None and big.room_dim is None
    assert big.rt60_measured == pytest.approx(0.5, rel=0.1)
    assert bank.room("booth").rt60_measured == pytest.approx(0.25, rel=0.1)
    h = bank.load("hall/big")
    assert h.dtype == np.float32 and h[0] == 1.0
    assert h.size < 0.75 * SR  # read at 8 kHz, tail cut at -60 dB (about the RT60)
    assert bank.near(0.5, "train" if big.split == "train" else big.split)
    assert bank.identity()["bank"] == "folder-rooms"
    with pytest.warns(UserWarning):
        assert isinstance(open_room_bank(str(root), Protocol()), FolderRoomBank)


def test_folder_room_bank_empty(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(RoomBankError, match="no usable impulse responses"):
        FolderRoomBank(tmp_path / "none", Protocol())
