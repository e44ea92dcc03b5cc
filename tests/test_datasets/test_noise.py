"""Noise banks: synthetic kinds (determinism, spectral character), splits, folder loader."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt, welch
from scipy.stats import kurtosis

from datasets.noise.bank import NoiseBankError, NoiseClip
from datasets.noise.folder import FolderNoiseBank
from datasets.noise.registry import open_noise_bank
from datasets.noise.synth import KINDS, SynthNoiseBank, hum_frequency, synth_noise
from datasets.protocol import Protocol

SR = 8000
CLIP_S = 20.0


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    """Two clips of every kind, straight from the generator (no cache involved)."""
    return {k: [synth_noise(k, i, seed=0, clip_s=CLIP_S, sample_rate=SR) for i in range(2)] for k in KINDS}


def psd(x: np.ndarray, nperseg: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    return welch(x.astype(np.float64), SR, nperseg=nperseg)


def slope_db_per_octave(x: np.ndarray, lo: float = 100.0, hi: float = 3000.0) -> float:
    f, p = psd(x)
    sel = (f >= lo) & (f <= hi)
    return float(np.polyfit(np.log2(f[sel]), 10 * np.log10(p[sel]), 1)[0])


# --------------------------------------------------------------------------- generator


def test_deterministic_per_seed_kind_index():
    a = synth_noise("pink", 3, seed=0, clip_s=5.0, sample_rate=SR)
    b = synth_noise("pink", 3, seed=0, clip_s=5.0, sample_rate=SR)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != synth_noise("pink", 3, seed=1, clip_s=5.0, sample_rate=SR).tobytes()
    assert a.tobytes() != synth_noise("pink", 4, seed=0, clip_s=5.0, sample_rate=SR).tobytes()
    for kind in ("babble", "clatter", "hum"):
        x = synth_noise(kind, 0, seed=0, clip_s=5.0, sample_rate=SR)
        assert x.tobytes() == synth_noise(kind, 0, seed=0, clip_s=5.0, sample_rate=SR).tobytes()
        assert x.tobytes() != synth_noise(kind, 0, seed=7, clip_s=5.0, sample_rate=SR).tobytes()


def test_clip_format(clips):
    for kind, xs in clips.items():
        for x in xs:
            assert x.dtype == np.float32 and x.ndim == 1
            assert x.size == int(CLIP_S * SR)
            assert np.all(np.isfinite(x))
            assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3), kind


def test_colored_noise_slopes(clips):
    for x in clips["white"]:
        assert abs(slope_db_per_octave(x)) < 0.5
    for x in clips["pink"]:
        assert slope_db_per_octave(x) == pytest.approx(-3.0, abs=0.5)
    for x in clips["brown"]:
        assert slope_db_per_octave(x) == pytest.approx(-6.0, abs=0.7)


def test_hum_has_mains_harmonics(clips):
    for index, x in enumerate(clips["hum"]):
        f0 = hum_frequency(index)
        other = 60 if f0 == 50 else 50
        f, p = psd(x, nperseg=SR)  # 1 Hz bins
        assert f[1] == pytest.approx(1.0)

        def peak_db(freq: int) -> float:
            return 10 * np.log10(p[freq] / np.median(p[freq + 4:freq + 16]))

        for k in (1, 2, 3):
            assert peak_db(k * f0) > 20, (f0, k)
        assert peak_db(other) < 6  # no peak at the other mains frequency's fundamental
    assert {hum_frequency(0), hum_frequency(1)} == {50, 60}


def test_clatter_is_impulsive(clips):
    for x in clips["clatter"]:
        assert kurtosis(x) > 15
        assert np.max(np.abs(x)) > 12  # crest factor (unit RMS); Gaussian noise is ~5
    for x in clips["white"] + clips["pink"]:
        assert abs(kurtosis(x)) < 0.5
        assert np.max(np.abs(x)) < 7


def modulation_ratio(x: np.ndarray) -> float:
    """Envelope power at syllabic rates (2-8 Hz) over that at 15-40 Hz, of the 300-3000 Hz band."""
    sos = butter(4, [300, 3000], btype="band", fs=SR, output="sos")
    y = sosfiltfilt(sos, x.astype(np.float64))
    frame = SR // 100
    env = np.sqrt(np.mean(y[: y.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
    f, p = welch(env / env.mean() - 1.0, 100, nperseg=512)
    return float(p[(f >= 2) & (f <= 8)].mean() / p[(f >= 15) & (f <= 40)].mean())


def test_babble_is_speech_like(clips):
    for x in clips["babble"]:
        f, p = psd(x)
        in_band = p[(f >= 150) & (f <= 1500)].sum() / p.sum()
        assert in_band > 0.75  # white noise: ~0.34
        low = p[(f >= 300) & (f <= 800)].mean()
        assert 10 * np.log10(p[(f >= 2000) & (f <= 3000)].mean() / low) < -8
        assert p[f < 60].sum() / p.sum() < 0.01
        assert modulation_ratio(x) > 10
    for x in clips["white"] + clips["pink"]:
        assert modulation_ratio(x) < 3
    f, p = psd(clips["white"][0])
    assert p[(f >= 150) & (f <= 1500)].sum() / p.sum() < 0.5


def test_unknown_kind():
    with pytest.raises(NoiseBankError, match="unknown noise kind"):
        synth_noise("rain", 0)


# --------------------------------------------------------------------------- synthetic bank


def test_synth_bank_ids_and_splits():
    bank = SynthNoiseBank(Protocol(), n_per_kind=8)
    clips = bank.clips()
    assert len(clips) == 8 * len(KINDS)
    assert all(isinstance(c, NoiseClip) for c in clips)
    assert "synth-noise/pink-03" in {c.noise_id for c in clips}
    assert bank.clip("synth-noise/hum-07").kind == "hum"
    assert bank.kinds() == sorted(KINDS)
    by_split = {s: {c.noise_id for c in bank.clips(s)} for s in ("train", "val", "test")}
    assert by_split["train"].isdisjoint(by_split["test"])
    assert not by_split["val"]  # default fractions 0.6 / 0 / 0.4
    assert set().union(*by_split.values()) == {c.noise_id for c in clips}
    for kind in KINDS:
        assert any(c.kind == kind for c in bank.clips("train"))
        assert any(c.kind == kind for c in bank.clips("test"))
    # splits are a function of the ids: a second bank agrees
    assert [c.split for c in SynthNoiseBank(Protocol(), n_per_kind=8).clips()] == [c.split for c in clips]
    with pytest.raises(ValueError, match="unknown split"):
        bank.clips("dev")
    with pytest.raises(KeyError, match="no clip"):
        bank.load("synth-noise/pink-99")


def test_synth_bank_load_and_disk_cache(cache):
    bank = SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=3.0, seed=5, kinds=("pink", "clatter"))
    x = bank.load("synth-noise/clatter-01")
    assert x.dtype == np.float32 and x.size == 3 * SR
    assert x.tobytes() == synth_noise("clatter", 1, seed=5, clip_s=3.0, sample_rate=SR).tobytes()
    files = list(bank.cache_path.glob("*.npy"))
    assert [p.name for p in files] == ["clatter-01.npy"]
    assert cache in bank.cache_path.parents
    mtime = files[0].stat().st_mtime_ns
    again = SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=3.0, seed=5, kinds=("pink", "clatter"))
    assert again.cache_path == bank.cache_path
    assert again.load("synth-noise/clatter-01").tobytes() == x.tobytes()
    assert files[0].stat().st_mtime_ns == mtime
    x[:] = 0  # load hands out copies
    assert np.any(bank.load("synth-noise/clatter-01"))
    other = SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=3.0, seed=6, kinds=("pink", "clatter"))
    assert other.identity() != bank.identity() and other.cache_path != bank.cache_path
    assert other.identity()["generator_version"] == bank.identity()["generator_version"]


def test_open_noise_bank(tmp_path):
    assert isinstance(open_noise_bank("synth", Protocol()), SynthNoiseBank)
    with pytest.raises(NoiseBankError, match="'synth', 'debian' or an existing folder"):
        open_noise_bank("no-such-thing", Protocol())
    with pytest.raises(NoiseBankError, match="'synth', 'debian' or an existing folder"):
        open_noise_bank(str(tmp_path / "missing"), Protocol())


# --------------------------------------------------------------------------- folder bank


def write_noise_folder(root):
    rng = np.random.default_rng(0)
    (root / "rain").mkdir(parents=True)
    (root / "cafe" / "evening").mkdir(parents=True)
    sf.write(root / "rain" / "a.wav", 0.1 * rng.standard_normal(2 * 16000), 16000)
    sf.write(root / "rain" / "b.flac", 0.2 * rng.standard_normal((3 * 8000, 2)), 8000)
    sf.write(root / "rain" / "c.wav", 0.05 * rng.standard_normal(int(1.5 * 22050)), 22050)
    sf.write(root / "cafe" / "evening" / "d.wav", 0.1 * rng.standard_normal(2 * 8000), 8000)
    sf.write(root / "cafe" / "evening" / "e.flac", 0.1 * rng.standard_normal(2 * 8000), 8000)
    sf.write(root / "rain" / "short.wav", 0.1 * rng.standard_normal(800), 8000)
    (root / "cafe" / "evening" / "broken.wav").write_bytes(b"RIFF\x00\x00junk" * 20)
    (root / "notes.txt").write_text("not audio")


def test_folder_bank(tmp_path):
    root = tmp_path / "noises"
    write_noise_folder(root)
    with pytest.warns(UserWarning, match="broken.wav"):
        bank = FolderNoiseBank(root, Protocol())
    ids = [c.noise_id for c in bank.clips()]
    assert ids == ["cafe/evening/d", "cafe/evening/e", "rain/a", "rain/b", "rain/c"]
    assert {c.kind for c in bank.clips()} == {"evening", "rain"}
    assert bank.clip("rain/b").duration_s == pytest.approx(3.0)
    skipped = {s.path.rsplit("/", 1)[-1]: s.reason for s in bank.skipped}
    assert set(skipped) == {"broken.wav", "short.wav"}
    assert "broken.wav" in skipped["broken.wav"]
    for noise_id, seconds in (("rain/a", 2.0), ("rain/b", 3.0), ("rain/c", 1.5)):
        x = bank.load(noise_id)
        assert x.dtype == np.float32 and x.ndim == 1
        assert x.size == pytest.approx(seconds * SR, abs=2)
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    for kind in ("rain", "evening"):
        splits = {c.split for c in bank.clips() if c.kind == kind}
        assert {"train", "test"} <= splits
    assert {c.noise_id for c in bank.clips("train")}.isdisjoint({c.noise_id for c in bank.clips("test")})
    ident = bank.identity()
    assert ident["bank"] == "folder-noise" and len(ident["clips"]) == 5
    with pytest.warns(UserWarning):
        assert isinstance(open_noise_bank(str(root), Protocol()), FolderNoiseBank)


def test_folder_bank_without_audio(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoiseBankError, match="no usable noise recordings"):
        FolderNoiseBank(tmp_path / "empty", Protocol())
