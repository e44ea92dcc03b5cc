"""The encoder: front end, loss, checkpoints, resume, embedding cache, bad input, shipped quality."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from datasets.corpora.folder import FolderCorpus
from datasets.corpora.synth import SynthCorpus
from datasets.noise.synth import SynthNoiseBank
from datasets.protocol import Protocol
from datasets.queries.queryset import QuerySetConfig, build_queryset
from datasets.rooms import SimulatedRoomBank
from encoders.builtin.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, untrained_encoder
from encoders.builtin.frontend import FrontendConfig, LogMelFrontend
from encoders.builtin.nafp import EncoderConfig, FingerprintEncoder
from encoders.builtin.transformer import MelPatchTransformer, TransformerConfig
from encoders.embed import AudioContentError, corpus_segments, embed_db, embed_queries
from encoders.train import (
    PairSampler,
    TrainConfig,
    batch_hard_triplet,
    lr_factor,
    nt_xent,
    random_equalise,
    total_train_seconds,
    train_encoder,
)
from encoders.validate import exact_hit_rates
from tests.conftest import write_tracks

TINY = EncoderConfig(channels=(8, 16, 16, 32), dim=16, head_hidden=8)
SPLITS = {"train": 0.5, "val": 0.25, "test": 0.25}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory):
    """A 20-track synth corpus with small noise and room banks, cached for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path_factory.mktemp("world-cache")))
        corpus = SynthCorpus(n_tracks=20, min_duration_s=30, max_duration_s=40, split_fractions=SPLITS,
                             progress=False)
        corpus.ensure_cached()
        noise = SynthNoiseBank(n_per_kind=2, clip_s=8.0)
        rooms = SimulatedRoomBank(rt60_levels=(0.3,), rooms_per_level=2, progress=False)
        for c in noise.clips():
            noise.load(c.noise_id)
    return corpus, noise, rooms


def test_frontend_shape_and_peak_at_the_tone() -> None:
    front = LogMelFrontend(FrontendConfig())
    t = torch.arange(8000) / 8000
    feats = front(torch.stack([torch.sin(2 * np.pi * 1000 * t), 0.001 * torch.sin(2 * np.pi * 500 * t)]))
    assert feats.shape == (2, 1, 64, 32) and front.n_frames(8000) == 32
    mel_hz = front.mel.mel_scale.fb.argmax(dim=0).float() * 8000 / 1024  # peak frequency of each filter
    assert abs(mel_hz[feats[0, 0].mean(-1).argmax()] - 1000) < 60
    assert abs(mel_hz[feats[1, 0].mean(-1).argmax()] - 500) < 40
    for f in feats:  # per-segment normalisation: the level of the input does not matter
        assert abs(float(f.mean())) < 1e-4 and abs(float(f.std()) - 1) < 1e-3


def test_model_embeddings_are_unit_norm_with_configured_size() -> None:
    model = FingerprintEncoder(TINY).eval()
    out = model(torch.randn(5, 8000))
    assert out.shape == (5, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert FingerprintEncoder().n_parameters() < 5e6 / 4  # the shipped size fits in 5 MB of float32


def test_nt_xent_is_low_for_matching_pairs_and_high_for_shuffled() -> None:
    a = torch.nn.functional.normalize(torch.randn(32, 16), dim=1)
    assert nt_xent(a, a, 0.05) < 0.01 < nt_xent(a, a[torch.randperm(32)], 0.05)


def test_triplet_loss_is_zero_for_matching_pairs_and_positive_for_shuffled() -> None:
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(32, 64), dim=1)
    assert batch_hard_triplet(a, a, 0.3) == 0.0
    assert batch_hard_triplet(a, a[torch.randperm(32)], 0.3) > 0.3


def test_triplet_loss_uses_the_hardest_negative() -> None:
    e = torch.eye(4)
    a = torch.stack([e[0], e[1]])
    near_a0 = torch.nn.functional.normalize(e[0] + 0.1 * e[2], dim=0)
    p = torch.stack([near_a0, e[1]])
    # every positive is at distance <= 0.005, every negative at 1: no loss at margin 0.5
    assert batch_hard_triplet(a, p, 0.5) == 0.0
    p_swapped = torch.stack([e[1], near_a0])  # each anchor's positive is the other's: all lose
    assert batch_hard_triplet(a, p_swapped, 0.5) > 0.5


def test_random_equalise_colours_the_spectrum_and_keeps_the_length() -> None:
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    for _ in range(12):
        y = random_equalise(x, 8000, rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        gain = np.abs(np.fft.rfft(y)) ** 2 / np.abs(np.fft.rfft(x)) ** 2
        bands_db = 10 * np.log10(gain[:4000].reshape(40, 100).mean(axis=1))  # 100 Hz bands
        assert bands_db.max() - bands_db.min() > 3.0


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    f = [lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x > y for x, y in zip(f[10:], f[11:]))
    assert f[-1] < 0.001 and lr_factor(0, 0, 100) == 1.0


@pytest.mark.parametrize("field,value,match", [
    ("loss", "hinge", "loss='hinge': allowed nt-xent, triplet"),
    ("p_eq", 1.5, r"p_eq=1.5: allowed \[0, 1\]"),
    ("warmup_steps", 10**6, "warmup_steps=1000000"),
    ("snr_db", (20.0, 0.0), "need low <= high"),
])
def test_bad_training_settings_say_what_is_allowed(field: str, value, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_equalised_positives_differ_from_plain_ones_under_the_same_seed(small_world) -> None:
    corpus, noise, rooms = small_world
    plain = PairSampler(corpus, noise, rooms, TrainConfig(p_noise=0.0, p_reverb=0.0), progress=False)
    coloured = PairSampler(corpus, noise, rooms, TrainConfig(p_noise=0.0, p_reverb=0.0, p_eq=1.0), progress=False)
    for seed in range(4):
        a0, p0 = plain.sample(np.random.default_rng(seed), 1)
        a1, p1 = coloured.sample(np.random.default_rng(seed), 1)
        np.testing.assert_array_equal(a0, a1)
        assert not np.allclose(p0, p1, atol=1e-3)


@pytest.mark.parametrize("architecture", ["nafp", "transformer"])
def test_loss_decreases_in_a_few_steps(small_world, architecture: str) -> None:
    corpus, noise, rooms = small_world
    torch.manual_seed(0)
    config = TrainConfig(batch_pairs=16)
    sampler = PairSampler(corpus, noise, rooms, config, progress=False)
    model = FingerprintEncoder(TINY) if architecture == "nafp" else MelPatchTransformer(TransformerConfig(depth=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    batch = [torch.from_numpy(x) for x in sampler.sample(rng, 16)]
    losses = []
    for _ in range(15):
        loss = nt_xent(model(batch[0]), model(batch[1]), config.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_pairs_come_from_train_split_only(small_world) -> None:
    corpus, noise, rooms = small_world
    sampler = PairSampler(corpus, noise, rooms, TrainConfig(), progress=False)
    train = {corpus.load(t.track_id).tobytes() for t in corpus.tracks("train")}
    assert len(sampler.tracks) == len(corpus.tracks("train"))
    assert all(a.tobytes() in train for a in sampler.tracks)
    assert len(sampler.noise) == len(noise.clips("train")) and len(sampler.rirs) == len(rooms.rooms("train"))


def test_checkpoint_round_trips_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = FingerprintEncoder(TINY)
    sha = save_checkpoint(tmp_path / "a.pt", model, Protocol(), {"note": "x"})
    enc = load_checkpoint(tmp_path / "a.pt", Protocol())
    assert enc.sha256 == sha and enc.record == {"note": "x"}
    for (k, v), (k2, v2) in zip(model.state_dict().items(), enc.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert save_checkpoint(tmp_path / "b.pt", enc.model, enc.protocol, enc.record) == sha
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_bad_checkpoints_name_the_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ok.pt", FingerprintEncoder(TINY), Protocol(), {})
    with pytest.raises(CheckpointError, match=r"ok.pt: trained for protocol .*16000"):
        load_checkpoint(tmp_path / "ok.pt", Protocol(sample_rate=16000))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable encoder checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["architecture"] = "resnet-9000"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: architecture 'resnet-9000'"):
        load_checkpoint(tmp_path / "other.pt")
    payload["architecture"] = torch.load(tmp_path / "ok.pt", weights_only=True)["architecture"]
    payload["model_config"]["dim"] = 32
    torch.save(payload, tmp_path / "resized.pt")
    with pytest.raises(CheckpointError, match="resized.pt: weights do not fit"):
        load_checkpoint(tmp_path / "resized.pt")
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint of that name"):
        load_checkpoint("no-such-encoder")


def test_resume_continues_where_it_stopped(small_world, tmp_path: Path) -> None:
    corpus, noise, rooms = small_world
    config = TrainConfig(epochs=2, steps_per_epoch=2, batch_pairs=8)
    straight = train_encoder(corpus, noise, rooms, tmp_path / "straight.pt", config, TINY,
                             progress=False, validate=False)

    def stop_after_first(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_encoder(corpus, noise, rooms, tmp_path / "resumed.pt", config, TINY, progress=False,
                      validate=False, on_epoch=stop_after_first)
    assert (tmp_path / "resumed.pt.state").exists()
    assert load_checkpoint(tmp_path / "resumed.pt").record["epochs_done"] == 1
    resumed = train_encoder(corpus, noise, rooms, tmp_path / "resumed.pt", config, TINY,
                            progress=False, validate=False)
    assert not (tmp_path / "resumed.pt.state").exists()
    assert resumed.record["losses"] == straight.record["losses"]
    for v, v2 in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(v, v2)
    torch.save({"record": {"run_key": "someone else's"}}, tmp_path / "resumed.pt.state")
    with pytest.raises(ValueError, match="belongs to another training run"):
        train_encoder(corpus, noise, rooms, tmp_path / "resumed.pt", config, TINY, progress=False, validate=False)


def test_fine_tuning_starts_from_the_checkpoint_and_keeps_its_lineage(small_world, tmp_path: Path) -> None:
    corpus, noise, rooms = small_world
    base = train_encoder(corpus, noise, rooms, tmp_path / "base.pt", TrainConfig(epochs=1, steps_per_epoch=2,
                         batch_pairs=8), TINY, progress=False, validate=False)
    still = TrainConfig(epochs=1, steps_per_epoch=1, batch_pairs=8, lr=1e-12, seed=5)
    tuned = train_encoder(corpus, noise, rooms, tmp_path / "tuned.pt", still, TINY, progress=False,
                          validate=False, init_from=base)
    fresh = train_encoder(corpus, noise, rooms, tmp_path / "fresh.pt", still, TINY, progress=False, validate=False)
    for name, v in base.model.state_dict().items():
        assert torch.allclose(tuned.model.state_dict()[name], v, atol=1e-8), name
    assert not all(torch.allclose(fresh.model.state_dict()[k], v, atol=1e-3)
                   for k, v in base.model.state_dict().items())
    lineage = tuned.record["init_from"]
    assert lineage["sha256"] == base.sha256 and lineage["epochs_done"] == 1
    assert tuned.record["run_key"] != fresh.record["run_key"]
    assert total_train_seconds(tuned.record) == pytest.approx(tuned.record["train_seconds"]
                                                              + base.record["train_seconds"])
    wider = EncoderConfig(channels=(8, 16, 16, 32), dim=32, head_hidden=8)
    with pytest.raises(ValueError, match=r"init-from .*base.pt: its model is .*'dim': 16"):
        train_encoder(corpus, noise, rooms, tmp_path / "wider.pt", still, wider, progress=False,
                      validate=False, init_from=base)


def test_embedding_cache_is_hit_on_the_second_call(small_world, tmp_path: Path) -> None:
    corpus, noise, rooms = small_world
    enc = untrained_encoder(Protocol(), TINY)
    segments = corpus_segments(corpus, "test")
    first, hit1 = embed_db(enc, corpus, segments, progress=False)
    second, hit2 = embed_db(enc, corpus, segments, progress=False)
    assert (hit1, hit2) == (False, True) and np.array_equal(first, second)
    assert first.shape == (len(segments), 16)
    qs = build_queryset(corpus, noise, rooms, QuerySetConfig(durations=(1.0, 2.5), snrs=(10.0,), reverbs=(None,),
                                                             per_cell=3), tmp_path / "qs", progress=False)
    q1, index, h1 = embed_queries(enc, qs, corpus.protocol, progress=False)
    q2, _, h2 = embed_queries(enc, qs, corpus.protocol, progress=False)
    assert (h1, h2) == (False, True) and np.array_equal(q1, q2)
    assert list(index.groupby("query").size()) == [1, 1, 1, 4, 4, 4]  # 2.5 s = 4 segments at 0.5 s hop
    other = untrained_encoder(Protocol(), TINY, seed=1)
    assert embed_db(other, corpus, segments, progress=False)[1] is False  # another encoder, another key


def test_silent_or_nan_audio_names_the_track(tmp_path: Path) -> None:
    write_tracks(tmp_path, [("fine.wav", 3.0, 8000, "WAV")])
    sf.write(tmp_path / "silence.wav", np.zeros(24000, np.float32), 8000)
    corpus = FolderCorpus(tmp_path, Protocol(), {"train": 0.0, "val": 0.0, "test": 1.0})
    enc = untrained_encoder(Protocol(), TINY)
    with pytest.raises(AudioContentError, match="track 'silence.wav' of corpus 'folder': audio is silent"):
        embed_db(enc, corpus, corpus_segments(corpus, "test"), progress=False)
    sf.write(tmp_path / "silence.wav", np.full(24000, np.nan, np.float32), 8000, subtype="FLOAT")
    with pytest.raises(Exception, match="silence.wav.*NaN"):
        embed_db(enc, FolderCorpus(tmp_path, Protocol(), {"train": 0.0, "val": 0.0, "test": 1.0}),
                 corpus_segments(corpus, "test"), progress=False)


def test_embed_command_prints_throughput(tmp_path: Path) -> None:
    write_tracks(tmp_path / "music", [(f"t{i}.wav", 4.0, 8000, "WAV") for i in range(3)])
    out = subprocess.run([sys.executable, "-m", "bench", "embed", "--corpus", "folder", "--corpus-path",
                          str(tmp_path / "music"), "--split", "all", "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "21 segments of 3 tracks" in out.stdout and "x real time" in out.stdout


@pytest.mark.slow
def test_shipped_encoder_meets_the_floor_on_synth_test_queries(tmp_path: Path) -> None:
    corpus = SynthCorpus(progress=False)
    noise = SynthNoiseBank()
    rooms = SimulatedRoomBank(rt60_levels=(0.3,), rooms_per_level=2, progress=False)
    qs = build_queryset(corpus, noise, rooms, QuerySetConfig(durations=(2.0,), snrs=(10.0,), reverbs=(None,),
                                                             per_cell=60, seed=123), tmp_path, progress=False)
    shipped = load_checkpoint("synth-default", corpus.protocol)
    assert shipped.record["trained"] and shipped.record["corpus"] == "synth"
    rate = exact_hit_rates(shipped, corpus, qs, progress=False)["2s"]
    untrained = exact_hit_rates(untrained_encoder(corpus.protocol), corpus, qs, progress=False)["2s"]
    assert rate >= 0.85 and rate > untrained + 0.2


def test_held_out_pairs_come_from_train_tracks_no_fitting_pair_comes_from(small_world, tmp_path, monkeypatch) -> None:
    from encoders.pairs import embed_train_pairs, held_out_tracks, pair_recipe, part_tracks

    corpus, noise, rooms = small_world
    ids = [t.track_id for t in corpus.tracks("train")]
    held = held_out_tracks(ids)
    assert held == held_out_tracks(list(reversed(ids)))  # by id, not by order
    assert 1 <= len(held) < len(ids)
    fit, out = part_tracks(corpus, "fit"), part_tracks(corpus, "held-out")
    assert set(fit) | set(out) == set(ids) and not set(fit) & set(out)
    sampler = PairSampler(corpus, noise, rooms, TrainConfig(), progress=False, track_ids=out)
    assert len(sampler.tracks) == len(out)
    with pytest.raises(ValueError, match="part="):
        part_tracks(corpus, "val")

    # the recipe is the encoder's own, as its checkpoint records it
    encoder = untrained_encoder(corpus.protocol, TINY)
    encoder.record["config"] = {"max_shift_s": 0.05, "snr_db": [-5.0, 5.0], "p_eq": 0.5, "epochs": 3}
    recipe = pair_recipe(encoder)
    assert (recipe.max_shift_s, recipe.snr_db, recipe.p_eq) == (0.05, (-5.0, 5.0), 0.5)

    # an interrupted embedding resumes at its first missing shard and gives the same pairs
    monkeypatch.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path))
    first = embed_train_pairs(encoder, corpus, noise, rooms, 24, seed=3, progress=False, part="held-out")
    shards = sorted(tmp_path.rglob("*-anchors.npy"))
    assert len(shards) == 1
    shards[0].unlink()
    again = embed_train_pairs(encoder, corpus, noise, rooms, 24, seed=3, progress=False, part="held-out")
    np.testing.assert_array_equal(first[0], again[0])
    other = embed_train_pairs(encoder, corpus, noise, rooms, 24, seed=3, progress=False, part="fit")
    assert not np.allclose(first[0], other[0])
