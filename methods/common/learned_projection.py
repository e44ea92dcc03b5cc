"""A learned projection d -> K: the FlowHash authors' hashing head, trained on frozen embeddings.

Architecture, as AFP-NF's ``NNBlock`` (``src/models/encoder.py``, ``factor`` 4): Linear d -> 512,
BatchNorm1d, ReLU, Linear 512 -> K. Loss, as AFP-NF's pre-training step
(``src/train/pre_trainer.py``): InfoNCE of the encoder embeddings (temperature 0.1) plus the L2
hinge on the head's outputs h,

    mean_i max(0, ||h(a_i) - h(p_i)|| - 0.5 mean_j (||h(a_i) - h(a_j)|| + ||h(a_i) - h(p_j)||)),

over a batch of anchor/positive pairs (j runs over the whole batch, i included). There the head
trains with the encoder; here the encoder is frozen (it is the suite's shared input), so the
InfoNCE term is a constant of each batch: it is computed and recorded (``head_losses``), and the
head learns from the hinge alone.

Training: Adam, batches of 512 pairs, until the held-out pairs' loss has not improved for
``patience`` epochs (at most ``epochs``), keeping the best epoch's weights. Hashing replays the
head in NumPy with the BatchNorm folded into the first layer; its outputs are centred and scaled
per dimension on the train anchors (to standard deviation ``scale``), so sign bits of the head
alone are balanced per dimension, as PCA whitening's are. A flow over them absorbs any such
affine map (its ActNorm re-estimates it).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.common.early_stopping import BestEpoch

HIDDEN = 512         # AFP-NF: int(2048 / factor), factor 4
TEMPERATURE = 0.1    # AFP-NF config/main.yaml ``temp``
BATCH_SIZE = 512     # AFP-NF ``batchsize``
LR = 1e-3
PATIENCE = 10
MAX_EPOCHS = 200
_FITTED: dict[tuple, "LearnedProjection"] = {}  # heads by (train pairs, K, scale, seed): one per run
_FITTED_MAX = 4


def make_head(d: int, K: int) -> nn.Sequential:
    """AFP-NF's NNBlock: Linear d -> 512, BatchNorm1d, ReLU, Linear 512 -> K."""
    return nn.Sequential(nn.Linear(d, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, K))


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """AFP-NF's contrastive term: mean_i -log(exp(a_i.p_i / t) / sum_j exp(a_i.p_j / t))."""
    logits = anchors @ positives.T / temperature
    return -(torch.diagonal(logits) - torch.logsumexp(logits, dim=1)).mean()


def l2_hinge(h_anchors: torch.Tensor, h_positives: torch.Tensor) -> torch.Tensor:
    """AFP-NF's hinge on the head outputs (module docstring), margin 0."""
    positive = torch.linalg.vector_norm(h_anchors - h_positives, dim=-1)
    to_anchors = torch.linalg.vector_norm(h_anchors[:, None] - h_anchors[None], dim=-1)
    to_positives = torch.linalg.vector_norm(h_anchors[:, None] - h_positives[None], dim=-1)
    negative = 0.5 * (to_anchors + to_positives).mean(dim=1)
    return torch.clamp(positive - negative, min=0.0).mean()


def head_losses(head: nn.Module, anchors: torch.Tensor, positives: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch's ``info_nce`` (of the frozen embeddings: no gradient), ``hinge`` and their ``loss``."""
    with torch.no_grad():
        contrastive = info_nce(anchors, positives)
    hinge = l2_hinge(head(anchors), head(positives))
    return {"loss": contrastive + hinge, "info_nce": contrastive, "hinge": hinge}


@dataclass
class LearnedProjection:
    """x -> standardised head(x): the trained head as arrays (BatchNorm folded into layer 1)."""

    w1: np.ndarray     # [d, HIDDEN] float32
    b1: np.ndarray     # [HIDDEN]
    w2: np.ndarray     # [HIDDEN, K]
    b2: np.ndarray     # [K]
    training: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def fit(cls, anchors: np.ndarray, positives: np.ndarray, held_anchors: np.ndarray, held_positives: np.ndarray,
            K: int, scale: float = 1.0, seed: int = 0) -> "LearnedProjection":
        """Train the head on the pairs, stop on the held-out pairs (module docstring); cached by inputs."""
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes()
                                         for x in (anchors, positives, held_anchors, held_positives))).hexdigest()
        key = (digest, anchors.shape, K, float(scale), seed)
        if key in _FITTED:
            return _FITTED[key]
        projection = cls._train(anchors, positives, held_anchors, held_positives, K, scale, seed)
        _FITTED[key] = projection
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.pop(next(iter(_FITTED)))
        return projection

    @classmethod
    def _train(cls, anchors: np.ndarray, positives: np.ndarray, held_anchors: np.ndarray,
               held_positives: np.ndarray, K: int, scale: float, seed: int) -> "LearnedProjection":
        t0 = time.perf_counter()
        # copies: the harness hands read-only arrays, which torch will not wrap
        xa, xp, va, vp = (torch.from_numpy(np.array(x, dtype=np.float32))
                          for x in (anchors, positives, held_anchors, held_positives))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = make_head(xa.shape[1], K)
            optimizer = torch.optim.Adam(head.parameters(), lr=LR)
            shuffler = torch.Generator().manual_seed(seed)
            keeper, steps, stopped = BestEpoch(head, PATIENCE, 1e-5), 0, "epochs"
            curve: list[dict[str, float]] = []
            for epoch in range(1, MAX_EPOCHS + 1):
                head.train()
                perm = torch.randperm(xa.shape[0], generator=shuffler)
                sums = {"loss": 0.0, "info_nce": 0.0, "hinge": 0.0}
                n_batches = 0
                for start in range(0, xa.shape[0], BATCH_SIZE):
                    idx = perm[start:start + BATCH_SIZE]
                    if idx.numel() < 2:  # BatchNorm needs two rows
                        continue
                    losses = head_losses(head, xa[idx], xp[idx])
                    optimizer.zero_grad()
                    losses["hinge"].backward()
                    optimizer.step()
                    n_batches += 1
                    for k in sums:
                        sums[k] += float(losses[k].detach())
                steps += n_batches
                held = held_loss(head, va, vp)
                curve.append({"epoch": epoch, "step": steps, **{k: v / max(1, n_batches) for k, v in sums.items()},
                              "held_out_loss": held})
                if keeper.update(epoch, held):
                    stopped = "early stopping"
                    break
            keeper.restore()
        head.eval()
        w1, b1, w2, b2 = fold_batch_norm(head)
        projection = cls(w1, b1, w2, b2)
        out = projection._raw(np.asarray(anchors, np.float32))
        mean, std = out.mean(axis=0), np.maximum(out.std(axis=0), 1e-12)
        projection.w2 = (w2 * (scale / std)).astype(np.float32)
        projection.b2 = ((b2 - mean) * (scale / std)).astype(np.float32)
        projection.training = {"epochs": len(curve), "steps": steps, "best_epoch": keeper.epoch,
                               "best_held_out_loss": keeper.best, "stopped": stopped, "fit_s": time.perf_counter() - t0,
                               "held_out_pairs": int(va.shape[0]), "max_epochs": MAX_EPOCHS, "lr": LR}
        projection.curve = curve
        return projection

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return (np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2).astype(np.float32, copy=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``x`` [n, d] to [n, K] float32."""
        return self._raw(np.asarray(x, np.float32))

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters."""
        return self.w1.nbytes + self.b1.nbytes + self.w2.nbytes + self.b2.nbytes


def held_loss(head: nn.Module, anchors: torch.Tensor, positives: torch.Tensor) -> float:
    """Mean hinge + InfoNCE of the held-out pairs in batches of ``BATCH_SIZE``, the head in eval mode."""
    head.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, anchors.shape[0], BATCH_SIZE):
            a, p = anchors[start:start + BATCH_SIZE], positives[start:start + BATCH_SIZE]
            total += float(head_losses(head, a, p)["loss"]) * a.shape[0]
            n += a.shape[0]
    return total / max(1, n)


def fold_batch_norm(head: nn.Sequential) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w1, b1, w2, b2) of an eval-mode head, transposed for ``x @ w``, BatchNorm folded into layer 1."""
    lin1, bn, _, lin2 = head
    gain = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    w1 = (lin1.weight.detach() * gain[:, None]).T
    b1 = (lin1.bias.detach() - bn.running_mean) * gain + bn.bias.detach()
    return tuple(t.detach().numpy().astype(np.float32) for t in (w1, b1, lin2.weight.T, lin2.bias))
