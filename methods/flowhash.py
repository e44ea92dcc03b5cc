"""FlowHash: balanced K-bit codes from a normalizing flow over projected embeddings.

Hash function: a fixed PCA-whitening projection 128 -> K fitted on the train anchors
(fixed, not learned: a projection learned jointly under the NLL can collapse), then an
nflows RealNVP-style flow (``methods.flow.model``) into a K-dim latent whose base density
is per dimension 0.5 N(-2, 1) + 0.5 N(2, 1) (``base="gmm"``) or N(0, 1) (``"normal"``);
bit j = [z_j > 0]. Training (``fit``) minimises the per-dimension NLL of anchors and
positives plus ``agreement_weight`` x mean softplus(-z_a z_p), which pushes each
anchor/positive pair to the same side of zero in every dimension. Adam, seeded, a fixed
budget of ``min(epochs * ceil(n_pairs / batch_size), max_steps)`` steps; every epoch
logs (logger ``methods.flowhash``) the losses and the bucket balance of the train anchors.

Search probes the own bucket, then flips the least certain bits (smallest |z|) first, in
order of the summed |z| of the flipped bits (``hash_table.probe_codes``); candidates are
re-ranked on the full embeddings by the shared ``HashTable``.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from methods.base import Method, SearchResult, TrainData, check_choice, check_float_range, check_int_range
from methods.common.balance import bucket_balance
from methods.common.hash_table import MAX_BITS, HashTable, latent_probes, pack_bits
from methods.common.projection import PCAWhitening
from methods.flow.inference import NumpyFlow
from methods.flow.model import (
    BASES,
    base_distribution,
    base_std,
    bit_agreement_loss,
    make_flow,
    make_transform,
    nll_per_dim,
)
from methods.registry import register

log = logging.getLogger(__name__)
HASH_BATCH = 16384   # rows per forward pass when hashing many vectors
MAX_PROBES = 4096    # probe sets come from a template over at most 12 bits (hash_table.probe_codes)
LOG_SAMPLE = 8192    # train pairs used for the per-epoch balance log


@register
class FlowHash(Method):
    """Normalizing-flow hashing (see module docstring); query knob ``n_probes``."""

    name = "flowhash"
    build_defaults = {"K": 16, "n_blocks": 10, "base": "normal", "hidden": 64, "epochs": 10,
                      "max_steps": 1000, "batch_size": 512, "lr": 1e-3, "agreement_weight": 0.3}
    query_defaults = {"n_probes": 1}
    devices = ("cpu", "cuda")

    projection: PCAWhitening | None = None
    hasher: NumpyFlow | None = None  # NumPy replay of the trained flow, used for all hashing

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("K", params["K"], 2, MAX_BITS)
        check_int_range("n_blocks", params["n_blocks"], 1)
        check_choice("base", params["base"], BASES)
        check_int_range("hidden", params["hidden"], 1)
        check_int_range("epochs", params["epochs"], 1)
        check_int_range("max_steps", params["max_steps"], 1)
        check_int_range("batch_size", params["batch_size"], 1)
        check_float_range("lr", params["lr"], 0.0, lo_open=True)
        check_float_range("agreement_weight", params["agreement_weight"], 0.0)

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("n_probes", params["n_probes"], 1, min(2 ** self.params["K"], MAX_PROBES))

    def _apply_threads(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # ---- training ----------------------------------------------------------------------

    def _fit(self, train: TrainData) -> None:
        p = self.params
        K, d = p["K"], train.anchors.shape[1]
        if K > d:
            raise ValueError(f"K={K} is out of range for d={d}; allowed: 2 <= K <= {min(d, MAX_BITS)}")
        self.projection = PCAWhitening.fit(train.anchors, K, scale=base_std(p["base"]))
        xa = torch.from_numpy(self.projection(train.anchors)).to(self.device)
        xp = torch.from_numpy(self.projection(train.positives)).to(self.device)
        total_steps = min(p["epochs"] * math.ceil(xa.shape[0] / p["batch_size"]), p["max_steps"])
        self.history: list[dict[str, float]] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.transform = make_transform(K, p["n_blocks"], p["hidden"]).to(self.device)
            self.base = base_distribution(p["base"], K).to(self.device)
            self.flow = make_flow(self.transform, self.base)
            optimizer = torch.optim.Adam(self.transform.parameters(), lr=p["lr"])
            shuffler = torch.Generator().manual_seed(self.seed)
            step = 0
            while step < total_steps:
                losses = self._train_epoch(xa, xp, optimizer, shuffler, total_steps - step)
                step += losses.pop("steps")
                self._log_epoch(len(self.history) + 1, step, losses,
                                train.anchors[:LOG_SAMPLE], train.positives[:LOG_SAMPLE])
        self.transform.eval()
        self.hasher = NumpyFlow.from_transform(self.transform)

    def _train_epoch(self, xa: torch.Tensor, xp: torch.Tensor, optimizer: torch.optim.Optimizer,
                     shuffler: torch.Generator, max_steps: int) -> dict[str, float]:
        """One shuffled pass over the pairs (at most ``max_steps`` steps); mean losses and step count."""
        batch_size, weight = self.params["batch_size"], self.params["agreement_weight"]
        perm = torch.randperm(xa.shape[0], generator=shuffler).to(self.device)
        sums = {"loss": 0.0, "nll": 0.0, "agreement": 0.0}
        steps = 0
        self.transform.train()
        for start in range(0, xa.shape[0], batch_size):
            if steps == max_steps:
                break
            idx = perm[start:start + batch_size]
            nll, z = nll_per_dim(self.transform, self.base, torch.cat([xa[idx], xp[idx]]))
            agreement = bit_agreement_loss(*z.chunk(2))
            loss = nll + weight * agreement
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            for key, value in (("loss", loss), ("nll", nll), ("agreement", agreement)):
                sums[key] += value.item()
        return {**{key: total / steps for key, total in sums.items()}, "steps": steps}

    def _log_epoch(self, epoch: int, step: int, losses: dict[str, float],
                   anchors: np.ndarray, positives: np.ndarray) -> None:
        self.transform.eval()
        with torch.inference_mode():  # torch here: big batches, under the torch thread setting
            z_a, z_p = (self.flow.transform_to_noise(torch.from_numpy(self.projection(x)).to(self.device))
                        .cpu().numpy() for x in (anchors, positives))
        balance = bucket_balance(np.unique(pack_bits(z_a > 0), return_counts=True)[1], 2 ** self.params["K"])
        record = {"epoch": epoch, "step": step, **losses,
                  "expected_bucket_size": balance["expected_bucket_size"],
                  "uniform_bucket_size": balance["uniform_bucket_size"],
                  "normalised_entropy": balance["normalised_entropy"],
                  "bit_balance_min": float((z_a > 0).mean(axis=0).min()),
                  "bit_balance_max": float((z_a > 0).mean(axis=0).max()),
                  "pair_bit_agreement": float(((z_a > 0) == (z_p > 0)).mean())}
        self.history.append(record)
        log.info("flowhash epoch %d (step %d): loss %.4f nll %.4f agreement %.4f | bucket size %.2f "
                 "(uniform %.2f) H/K %.3f bit balance %.3f..%.3f pair agreement %.3f",
                 epoch, step, record["loss"], record["nll"], record["agreement"],
                 record["expected_bucket_size"], record["uniform_bucket_size"], record["normalised_entropy"],
                 record["bit_balance_min"], record["bit_balance_max"], record["pair_bit_agreement"])

    # ---- hashing -----------------------------------------------------------------------

    def latent(self, x: np.ndarray) -> np.ndarray:
        """Flow latent z [n, K] float32 of embeddings ``x`` [n, d]; the hash bits are z > 0."""
        if self.hasher is None:
            raise RuntimeError("flowhash: call fit(train) before build() or search()")
        return np.concatenate([self.hasher(self.projection(x[start:start + HASH_BATCH]))
                               for start in range(0, x.shape[0], HASH_BATCH)])

    def _build(self, db: np.ndarray) -> None:
        self.table = HashTable(pack_bits(self.latent(db) > 0), db)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        return self.table.search(q, latent_probes(self.latent(q), self.query_params["n_probes"]), k)

    def _stats(self) -> dict[str, Any]:
        K = self.params["K"]
        flow_bytes = sum(t.numel() * t.element_size() for t in self.transform.state_dict().values())
        return {
            "index_bytes": self.table.nbytes() + self.projection.nbytes + flow_bytes,
            "K": K,
            "L": 1,
            "n_buckets_total": 2 ** K,
            "bucket_counts": self.table.bucket_counts(0),
        }
