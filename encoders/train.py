"""Contrastive training of the fingerprint encoder (NT-Xent, NAFP recipe; or a batch-hard triplet loss).

Positives are the anchor segment shifted by a small time offset and degraded on the fly with
train-split noise and rooms, and optionally band-limited or equalised (a random biquad: the
playback and microphone chain); negatives are the rest of the batch. The learning rate warms up
linearly, then decays on a cosine. A checkpoint is written every epoch; an interrupted run resumes
from ``PATH.state`` where it stopped, to the same weights. A run may start from another checkpoint's
weights (fine-tuning, ``init_from``); its record then names that checkpoint and its training time.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from datasets.cache import atomic_path, cache_dir, stable_hash
from datasets.corpora.corpus import Corpus
from datasets.noise.bank import NoiseBank
from datasets.progress import tqdm
from datasets.queries.degrade import degrade
from datasets.queries.queryset import QuerySetConfig, activity, build_queryset
from datasets.rooms import RoomBank

from .builtin.checkpoint import CheckpointEncoder, ModelConfig, build_model, checkpoint_bytes, load_checkpoint
from .builtin.frontend import FrontendConfig
from .builtin.nafp import EncoderConfig
from .validate import exact_hit_rates

log = logging.getLogger(__name__)

LOSSES = ("nt-xent", "triplet")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; all of them go into the checkpoint's record."""

    epochs: int = 12
    steps_per_epoch: int = 50
    batch_pairs: int = 128
    lr: float = 1e-3
    temperature: float = 0.05
    max_shift_s: float = 0.2
    snr_db: tuple[float, float] = (0.0, 20.0)
    p_noise: float = 0.9
    p_reverb: float = 0.5
    p_eq: float = 0.0
    loss: str = "nt-xent"
    margin: float = 0.3
    warmup_steps: int = 0
    seed: int = 0
    val_per_cell: int = 100
    val_durations: tuple[float, ...] = (1.0, 2.0)
    val_snr_db: float = 10.0
    val_every: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_pairs", "val_per_cell", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: allowed >= 1")
        if not 0 < self.temperature <= 1:
            raise ValueError(f"temperature={self.temperature}: allowed (0, 1]")
        for name in ("p_noise", "p_reverb", "p_eq"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: allowed [0, 1]")
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}: allowed {', '.join(LOSSES)}")
        if not 0 < self.margin <= 2:
            raise ValueError(f"margin={self.margin}: allowed (0, 2] (a cosine-distance margin)")
        if not 0 <= self.warmup_steps < self.epochs * self.steps_per_epoch:
            raise ValueError(f"warmup_steps={self.warmup_steps}: allowed 0 .. epochs * steps_per_epoch - 1")
        if self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"snr_db={self.snr_db}: need low <= high")

    def to_dict(self) -> dict:
        """Plain-dict form for the record."""
        d = asdict(self)
        d["snr_db"], d["val_durations"] = list(self.snr_db), list(self.val_durations)
        return d


def nt_xent(a: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) loss for L2-normalised pairs: row i of ``a`` and of ``p`` are positives."""
    z = torch.cat([a, p])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def batch_hard_triplet(a: torch.Tensor, p: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on cosine distance for L2-normalised pairs.

    Each of the 2N embeddings is an anchor; its positive is its pair, its negative the closest
    other embedding in the batch (Hermans et al. 2017): mean of max(0, d(x, x+) - d(x, x-) + margin).
    """
    z = torch.cat([a, p])
    n = a.shape[0]
    dist = 1.0 - z @ z.T
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    d_pos = dist[torch.arange(2 * n, device=z.device), partner]
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    excluded[torch.arange(2 * n, device=z.device), partner] = True
    d_neg = dist.masked_fill(excluded, float("inf")).min(dim=1).values
    return F.relu(d_pos - d_neg + margin).mean()


def contrastive_loss(a: torch.Tensor, p: torch.Tensor, config: "TrainConfig") -> torch.Tensor:
    """The loss ``config.loss`` names, on a batch of embedded pairs."""
    if config.loss == "triplet":
        return batch_hard_triplet(a, p, config.margin)
    return nt_xent(a, p, config.temperature)


def random_equalise(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` through one random biquad: a low-pass (1-3.5 kHz), a high-pass (80-500 Hz) or a
    peaking EQ (150 Hz-3 kHz, +-12 dB): the colour of a small speaker or a phone microphone."""
    nyquist = sample_rate / 2
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    kind = int(rng.integers(3))
    if kind == 0:
        y = AF.lowpass_biquad(t, sample_rate, float(rng.uniform(1000.0, min(3500.0, 0.9 * nyquist))))
    elif kind == 1:
        y = AF.highpass_biquad(t, sample_rate, float(rng.uniform(80.0, 500.0)))
    else:
        y = AF.equalizer_biquad(t, sample_rate, float(rng.uniform(150.0, min(3000.0, 0.8 * nyquist))),
                                float(rng.uniform(-12.0, 12.0)), float(rng.uniform(0.7, 2.0)))
    return y.numpy()


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup_steps``, then a cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class PairSampler:
    """Draws (clean anchor, degraded positive) segment pairs from train-split audio only."""

    def __init__(self, corpus: Corpus, noise: NoiseBank, rooms: RoomBank, config: TrainConfig,
                 progress: bool = True, track_ids: list[str] | None = None) -> None:
        """Load the train-split tracks (only ``track_ids`` among them, when given), train noise and rooms."""
        p = corpus.protocol
        wanted = None if track_ids is None else set(track_ids)
        self.n = p.segment_samples
        self.shift = int(config.max_shift_s * p.sample_rate)
        self.config = config
        self.sample_rate = p.sample_rate
        self.tracks, self.active = [], []
        train = [t for t in corpus.tracks("train") if wanted is None or t.track_id in wanted]
        for t in tqdm(train, desc="load train tracks", disable=not progress):
            audio = corpus.load(t.track_id)
            if len(audio) >= self.n + 2 * self.shift + 1:
                self.tracks.append(audio)
                self.active.append(activity(audio, p.sample_rate))
        if not self.tracks:
            raise ValueError(f"corpus {corpus.name!r} has no train-split track longer than "
                             f"{(self.n + 2 * self.shift) / p.sample_rate:.1f} s")
        lengths = np.array([len(a) for a in self.tracks], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.frame = int(0.1 * p.sample_rate)
        self.noise = [noise.load(c.noise_id) for c in noise.clips("train")]
        self.rirs = [rooms.load(r.rir_id) for r in rooms.rooms("train")]
        if config.p_noise > 0 and not self.noise:
            raise ValueError("the noise bank has no train-split clips")
        if config.p_reverb > 0 and not self.rirs:
            raise ValueError("the room bank has no train-split rooms")

    def _start(self, rng: np.random.Generator, t: int) -> int:
        audio, active = self.tracks[t], self.active[t]
        for _ in range(20):
            s = int(rng.integers(self.shift, len(audio) - self.n - self.shift + 1))
            window = active[s // self.frame:(s + self.n) // self.frame]
            if window.size and window.mean() >= 0.5:
                break
        return s

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` anchors and their positives, [batch, segment_samples] float32 each."""
        anchors = np.empty((batch, self.n), np.float32)
        positives = np.empty((batch, self.n), np.float32)
        c = self.config
        for i in range(batch):
            t = int(rng.choice(len(self.tracks), p=self.weights))
            s = self._start(rng, t)
            audio = self.tracks[t]
            anchors[i] = audio[s:s + self.n]
            ps = s + int(rng.integers(-self.shift, self.shift + 1))
            rir = self.rirs[int(rng.integers(len(self.rirs)))] if rng.random() < c.p_reverb else None
            noise, offset, snr = None, 0, None
            if rng.random() < c.p_noise:
                noise = self.noise[int(rng.integers(len(self.noise)))]
                offset = int(rng.integers(len(noise)))
                snr = float(rng.uniform(*c.snr_db))
            positives[i] = degrade(audio, ps, self.n, rir, noise, offset, snr)[0]
            if c.p_eq > 0 and rng.random() < c.p_eq:
                positives[i] = random_equalise(positives[i], self.sample_rate, rng)
        return anchors, positives


def _val_queryset(corpus: Corpus, noise: NoiseBank, rooms: RoomBank, config: TrainConfig, progress: bool):
    qconfig = QuerySetConfig(durations=config.val_durations, snrs=(config.val_snr_db,), reverbs=(None,),
                             per_cell=config.val_per_cell, seed=config.seed, split="val")
    key = stable_hash([qconfig.to_dict(), corpus.identity(), noise.identity()])
    return build_queryset(corpus, noise, rooms, qconfig, cache_dir("querysets", f"val-{key}"), progress=progress)


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def _initial_weights(init_from: CheckpointEncoder, model_config: ModelConfig, protocol) -> dict:
    """What a fine-tuning run records of its starting checkpoint; refuses one that does not fit."""
    where = init_from.path or init_from.name
    if init_from.model.config != model_config:
        raise ValueError(f"init-from {where}: its model is {init_from.model.config.to_dict()}, this run builds "
                         f"{model_config.to_dict()} (leave --channels/--dim unset to take the checkpoint's)")
    if init_from.model.frontend_config != FrontendConfig(sample_rate=protocol.sample_rate):
        raise ValueError(f"init-from {where}: its front end {init_from.model.frontend_config.to_dict()} is not "
                         f"this run's (sample rate {protocol.sample_rate} Hz)")
    r = init_from.record
    return {"name": init_from.name, "sha256": init_from.sha256, "corpus": r.get("corpus"),
            "epochs_done": int(r.get("epochs_done", 0)), "train_seconds": float(r.get("train_seconds", 0.0)),
            "init_from": r.get("init_from")}


def total_train_seconds(record: dict) -> float:
    """Training time of a checkpoint including every checkpoint it was fine-tuned from."""
    total, r = 0.0, record
    while r:
        total += float(r.get("train_seconds", 0.0))
        r = r.get("init_from")
    return total


def train_encoder(corpus: Corpus, noise: NoiseBank, rooms: RoomBank, out: Path | str,
                  config: TrainConfig = TrainConfig(), model_config: ModelConfig = EncoderConfig(),
                  device: str = "cpu", progress: bool = True, validate: bool = True,
                  on_epoch: Callable[[int, dict], None] | None = None,
                  init_from: CheckpointEncoder | None = None) -> CheckpointEncoder:
    """Train (or resume training) an encoder and write its checkpoint to ``out``.

    ``init_from``: start from that checkpoint's weights instead of a random initialisation (its
    architecture and size must be ``model_config``'s: an ``EncoderConfig`` builds the NAFP-style
    convolutional model, a ``TransformerConfig`` the mel-patch transformer); the optimiser and
    schedule start afresh.
    ``on_epoch(epoch, record)`` is called after each epoch's checkpoint is written.
    """
    out = Path(out)
    protocol = corpus.protocol
    initial = _initial_weights(init_from, model_config, protocol) if init_from is not None else None
    identity = {"corpus": stable_hash(corpus.identity(), n=32), "noise": stable_hash(noise.identity(), n=32),
                "rooms": stable_hash(rooms.identity(), n=32), "train": config.to_dict(),
                "model": model_config.to_dict(), "protocol": protocol.to_dict()}
    if initial is not None:
        identity["init_from"] = initial["sha256"]
    run_key = stable_hash(identity, n=32)
    torch.manual_seed(config.seed)
    model = build_model(model_config, FrontendConfig(sample_rate=protocol.sample_rate)).to(device)
    if init_from is not None:
        model.load_state_dict(init_from.model.state_dict())
    optim = torch.optim.Adam(model.parameters(), lr=config.lr)
    total_steps = config.epochs * config.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda step: lr_factor(step, config.warmup_steps, total_steps))
    rng = np.random.default_rng(config.seed)
    record = {"trained": True, "corpus": corpus.name, "run_key": run_key, "seed": config.seed,
              "config": config.to_dict(), "n_parameters": model.n_parameters(), "epochs_done": 0,
              "losses": [], "val": [], "train_seconds": 0.0, "torch": str(torch.__version__)}
    if initial is not None:
        record["init_from"] = initial
    state_path = _state_path(out)
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["record"]["run_key"] != run_key:
            raise ValueError(f"{state_path} belongs to another training run (other corpus or settings); "
                             "delete it or choose another --out")
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        record = state["record"]
        log.info("resuming %s at epoch %d of %d", out, record["epochs_done"] + 1, config.epochs)
    elif out.exists():
        done = load_checkpoint(out, protocol, device)
        if done.record.get("run_key") == run_key and done.record.get("epochs_done") == config.epochs:
            return done
        raise ValueError(f"{out} exists and is not this training run's result; choose another --out")
    print(f"encoder: {model.n_parameters():,} parameters; training on {device}")
    sampler = PairSampler(corpus, noise, rooms, config, progress)
    val_qs = _val_queryset(corpus, noise, rooms, config, progress) if validate else None

    for epoch in range(record["epochs_done"], config.epochs):
        t0 = time.perf_counter()
        model.train()
        losses = []
        bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
        for _ in bar:
            a, p = sampler.sample(rng, config.batch_pairs)
            za = model(torch.from_numpy(a).to(device))
            zp = model(torch.from_numpy(p).to(device))
            loss = contrastive_loss(za, zp, config)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        model.eval()
        record["losses"].append(float(np.mean(losses)))
        if val_qs is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
            enc = CheckpointEncoder(model, protocol, record, weights_sha256=f"training-epoch-{epoch}")
            rates = exact_hit_rates(enc, corpus, val_qs, progress=False, cache=False)
            record["val"].append({"epoch": epoch + 1, **rates})
            print(f"epoch {epoch + 1}: loss {record['losses'][-1]:.4f}; val top-1 exact "
                  + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()), flush=True)
        record["epochs_done"] = epoch + 1
        record["train_seconds"] += time.perf_counter() - t0
        _save(out, model, protocol, record, optim, sched, rng, finished=epoch + 1 == config.epochs)
        if on_epoch:
            on_epoch(epoch + 1, record)
    return load_checkpoint(out, protocol, device)


def _save(out: Path, model: torch.nn.Module, protocol, record: dict, optim, sched,
          rng: np.random.Generator, finished: bool) -> None:
    with atomic_path(out) as tmp:
        tmp.write_bytes(checkpoint_bytes(model, protocol, record))
    state_path = _state_path(out)
    if finished:
        state_path.unlink(missing_ok=True)
        return
    state = {"model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "record": record}
    with atomic_path(state_path) as tmp:
        torch.save(state, tmp)
