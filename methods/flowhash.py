"""FlowHash: balanced K-bit codes from a normalizing flow over projected embeddings.

Hash function: a projection 128 -> K (``projection``): PCA whitening fitted on the train anchors
(``"pca"``), or the FlowHash authors' learned head (``"learned"``: ``methods.common.learned_projection``,
trained on the frozen embeddings, shared by every configuration of a run with that K), then an
nflows RealNVP-style flow (``methods.flow.model``) into a K-dim latent whose base density
is per dimension 0.5 N(-2, 1) + 0.5 N(2, 1) (``base="gmm"``, the paper's) or N(0, 1)
(``"normal"``); bit j = [z_j > 0]. ``n_blocks=0`` is no flow at all: the sign bits of the
projection (the ``pca-sign`` ablation). The class defaults are the paper's configuration.

Training (``fit``), ``objective``:

- ``"symmetric"``: the per-dimension NLL of anchors and positives plus ``agreement_weight`` x
  mean softplus(-z_a z_p), which pushes each pair to the same side of zero in every dimension;
- ``"paper"`` (two-mode base only): as the authors' code (AFP-NF ``trainer.py``), the NLL of the
  anchors (of the whole latent, summed over dimensions, as there) plus ``agreement_weight`` (0.3)
  x their cross term -sum_k sum_c [log N(z_a; mu_c, 1)
  N(z_p; mu_c, 1) + log N(z_p; mu_c, 1) N(z_a; mu_c, 1)] over the two modes mu_c = -2, +2.

Adam, seeded. With ``patience = 0`` a fixed budget of ``epochs * ceil(n_pairs / batch_size)``
steps (at most ``max_steps``, when set); with ``patience > 0``, training stops when the loss of
the held-out pairs (``TrainData.held_anchors``: from train tracks no fitting pair comes from;
without them, a seeded 10% of the pairs) has not improved for ``patience`` epochs (or at
``epochs`` / ``max_steps``; ``max_steps=None``: no step cap), keeping the best epoch's weights;
``stats()["training"]`` records why it stopped, ``stats()["training_curve"]`` every epoch, and
``stats()["latent"]`` the DB latent's diagnostics (``methods.common.latent_diagnostics``).
Every epoch logs (logger ``methods.flowhash``) the losses and the bucket balance of the train
anchors. A fitted flow is kept in memory by its inputs and training parameters, so
configurations that differ only in ``tau_db`` train once.

Probing, by query parameters: ``n_probes`` buckets, the own bucket first, then flips of the
least certain bits (smallest |z|) in order of the summed |z| of the flipped bits
(``hash_table.probe_codes``); or, with ``tau > 0``, the paper's threshold probing: every bit
with |z| <= tau is expanded to both values, 2^m buckets for m uncertain bits (adaptive per
query; ``hash_table.threshold_expansion``). ``tau_db > 0`` (build) inserts each DB item in the
2^m buckets of its own uncertain bits (|z| <= tau_db), as the paper's index does; index size
and build time include the extra entries. Candidates are re-ranked on the full embeddings by
the shared ``HashTable``.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import partial
from typing import Any

import numpy as np
import torch

from methods.base import Method, SearchResult, TrainData, check_choice, check_float_range, check_int_range
from methods.common.balance import bucket_balance
from methods.common.early_stopping import BestEpoch
from methods.common.hash_table import (
    MAX_BITS,
    HashTable,
    check_kernels,
    latent_probes,
    pack_bits,
    threshold_expansion,
    warm_up,
)
from methods.common.latent_diagnostics import DIAGNOSTIC_TAUS, latent_diagnostics
from methods.common.learned_projection import LearnedProjection
from methods.common.projection import PCAWhitening
from methods.flow.compiled import CompiledFlow
from methods.flow.inference import NumpyFlow
from methods.flow.model import (
    BASES,
    base_abs_cdf,
    base_abs_pdf,
    base_distribution,
    base_std,
    bit_agreement_loss,
    make_flow,
    make_transform,
    nll_per_dim,
    paper_agreement_loss,
)
from methods.registry import register

log = logging.getLogger(__name__)
HASH_BATCH = 16384   # rows per forward pass when hashing many vectors
MAX_PROBES = 4096    # probe sets come from a template over at most 12 bits (hash_table.probe_codes)
LOG_SAMPLE = 8192    # train pairs used for the per-epoch balance log
OBJECTIVES = ("symmetric", "paper")
PROJECTIONS = ("pca", "learned")
VALIDATION_FRACTION = 0.1  # of the train pairs, held out for early stopping when no held-out pairs are given
MAX_THRESHOLD_BITS = 8     # threshold probing / multi-insertion expand at most 2^8 codes per row (docs/fidelity.md)
_FITTED: dict[tuple, tuple] = {}  # fitted flows by (inputs, training parameters, seed)
_FITTED_MAX = 16  # a flow is small (K x hidden); binary-index configurations reuse theirs


@register
class FlowHash(Method):
    """Normalizing-flow hashing (see module docstring); query knobs ``n_probes`` or ``tau``."""

    name = "flowhash"
    # the paper's configuration (docs/fidelity.md): K 16, 10 couplings, the two-mode base, the
    # authors' objective, trained until the held-out pairs' loss stops improving (no step cap)
    build_defaults = {"K": 16, "projection": "pca", "n_blocks": 10, "base": "gmm", "hidden": 64, "epochs": 400,
                      "max_steps": None, "batch_size": 512, "lr": 1e-3, "agreement_weight": 0.3,
                      "objective": "paper", "patience": 10, "tau_db": 0.0, "kernels": "numba"}
    query_defaults = {"n_probes": 1, "tau": 0.0}
    devices = ("cpu", "cuda")
    threads_over_batch = False  # one thread a batch; the kernels and torch release the GIL

    projection: PCAWhitening | LearnedProjection | None = None
    hasher: NumpyFlow | CompiledFlow | None = None  # the trained flow's replay, used for all hashing

    def _check_build_params(self, params: dict[str, Any]) -> None:
        check_int_range("K", params["K"], 2, MAX_BITS)
        check_choice("projection", params["projection"], PROJECTIONS)
        check_int_range("n_blocks", params["n_blocks"], 0)
        check_choice("base", params["base"], BASES)
        check_int_range("hidden", params["hidden"], 1)
        check_int_range("epochs", params["epochs"], 1)
        if params["max_steps"] is not None:
            check_int_range("max_steps", params["max_steps"], 1)
        check_int_range("batch_size", params["batch_size"], 1)
        check_float_range("lr", params["lr"], 0.0, lo_open=True)
        check_float_range("agreement_weight", params["agreement_weight"], 0.0)
        check_choice("objective", params["objective"], OBJECTIVES)
        if params["objective"] == "paper" and params["base"] != "gmm":
            raise ValueError("objective='paper' needs base='gmm' (its agreement term is over the two modes)")
        check_int_range("patience", params["patience"], 0)
        check_float_range("tau_db", params["tau_db"], 0.0)
        check_kernels(params["kernels"])

    def _check_query_params(self, params: dict[str, Any]) -> None:
        check_int_range("n_probes", params["n_probes"], 1, min(2 ** self.params["K"], MAX_PROBES))
        check_float_range("tau", params["tau"], 0.0)
        if params["tau"] > 0 and params["n_probes"] != 1:
            raise ValueError(f"tau={params['tau']} (threshold probing) and n_probes={params['n_probes']} "
                             f"(margin-ordered probing) exclude each other; give one of them")

    def set_query_params(self, **params: Any) -> None:
        """Set ``n_probes`` (margin-ordered probing) or ``tau`` (threshold probing); setting one
        resets the other, so a sweep can move from one probing to the other."""
        if "tau" in params and "n_probes" not in params:
            params["n_probes"] = 1
        if "n_probes" in params and "tau" not in params:
            params["tau"] = 0.0
        super().set_query_params(**params)

    def _apply_threads(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # ---- training ----------------------------------------------------------------------

    def _fit(self, train: TrainData) -> None:
        p = self.params
        K, d = p["K"], train.anchors.shape[1]
        if K > d:
            raise ValueError(f"K={K} is out of range for d={d}; allowed: 2 <= K <= {min(d, MAX_BITS)}")
        # the fitting and held-out pairs, split once for whichever of the head and the flow stops early
        split = (self._held_out(train) if p["projection"] == "learned" or (p["n_blocks"] > 0 and p["patience"] > 0)
                 else None)
        if p["projection"] == "learned":
            self.projection = LearnedProjection.fit(*split, K, scale=base_std(p["base"]),
                                                    seed=self.seed)
        else:
            self.projection = PCAWhitening.fit(train.anchors, K, scale=base_std(p["base"]))
        self.training: dict[str, Any] = {"steps": 0, "epochs": 0, "stopped": "no flow (n_blocks=0)"}
        self.history: list[dict[str, float]] = []
        if p["n_blocks"] == 0:
            self.transform = None
            self.hasher = _identity
            return
        key = self._fit_key(train)
        self._fitted_key = key
        if key in _FITTED:
            self.transform, self.base, self.history, self.training = _FITTED[key]
            self.flow = make_flow(self.transform, self.base)
            self.hasher = self._replay()
            return
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.transform = make_transform(K, p["n_blocks"], p["hidden"]).to(self.device)
            self.base = base_distribution(p["base"], K).to(self.device)
            self.flow = make_flow(self.transform, self.base)
            optimizer = torch.optim.Adam(self.transform.parameters(), lr=p["lr"])
            shuffler = torch.Generator().manual_seed(self.seed)
            if p["patience"] > 0:
                self._fit_early_stopping(*(self._projected(x) for x in split),
                                         optimizer, shuffler, train)
            else:
                xa, xp = self._projected(train.anchors), self._projected(train.positives)
                total_steps = p["epochs"] * math.ceil(xa.shape[0] / p["batch_size"])
                if p["max_steps"] is not None:
                    total_steps = min(total_steps, p["max_steps"])
                step = 0
                while step < total_steps:
                    losses = self._train_epoch(xa, xp, optimizer, shuffler, total_steps - step)
                    step += losses.pop("steps")
                    self._log_epoch(len(self.history) + 1, step, losses,
                                    train.anchors[:LOG_SAMPLE], train.positives[:LOG_SAMPLE])
                self.training = {"steps": step, "epochs": len(self.history), "stopped": "fixed budget"}
        self.training["fit_s"] = time.perf_counter() - t0
        self.transform.eval()
        self.hasher = self._replay()
        _remember(key, (self.transform, self.base, self.history, self.training))

    def __setstate__(self, state: dict) -> None:
        """Unpickled (e.g. from the harness's fit cache): its flow is remembered as if fitted here,
        so other configurations with the same flow (``binary-index`` over its codes) reuse it."""
        self.__dict__.update(state)
        key = state.get("_fitted_key")
        if key is not None and key not in _FITTED:
            _remember(key, (self.transform, self.base, self.history, self.training))

    def _held_out(self, train: TrainData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fit anchors, fit positives, held-out anchors, held-out positives): the given held-out
        pairs (from train tracks no fitting pair comes from), else a seeded 10% of the pairs."""
        if train.held_anchors is not None:
            return train.anchors, train.positives, train.held_anchors, train.held_positives
        n = train.anchors.shape[0]
        n_val = max(1, int(round(VALIDATION_FRACTION * n)))
        split = np.random.default_rng(self.seed + 1).permutation(n)
        val, fit = np.sort(split[:n_val]), np.sort(split[n_val:])
        return train.anchors[fit], train.positives[fit], train.anchors[val], train.positives[val]

    def _projected(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.projection(x), dtype=np.float32)).to(self.device)

    def _replay(self) -> NumpyFlow | CompiledFlow:
        """The trained flow as arrays: NumPy (the reference) or compiled, by ``kernels``."""
        flow = NumpyFlow.from_transform(self.transform)
        return CompiledFlow(flow) if self.params["kernels"] == "numba" else flow

    def _warm_up(self) -> None:
        warm_up(self.params["kernels"])
        if self.hasher is not None:
            self.hasher(np.zeros((1, self.params["K"]), dtype=np.float32))

    def _fit_key(self, train: TrainData) -> tuple:
        """What a fitted flow depends on: the train pairs, every training parameter, seed and device."""
        held = b"" if train.held_anchors is None else train.held_anchors.tobytes() + train.held_positives.tobytes()
        digest = hashlib.sha256(train.anchors.tobytes() + train.positives.tobytes() + held).hexdigest()
        params = tuple(sorted((k, v) for k, v in self.params.items() if k not in ("tau_db", "kernels")))
        return digest, train.anchors.shape, params, self.seed, self.device

    def _fit_early_stopping(self, xa: torch.Tensor, xp: torch.Tensor, xa_val: torch.Tensor, xp_val: torch.Tensor,
                            optimizer: torch.optim.Optimizer, shuffler: torch.Generator, train: TrainData) -> None:
        """Train on the fitting pairs until the held-out pairs' loss stops improving; keep the best."""
        p = self.params
        cap = p["max_steps"]
        keeper, step, stopped = BestEpoch(self.transform, p["patience"], 1e-4), 0, "epochs"
        for epoch in range(1, p["epochs"] + 1):
            if cap is not None and step >= cap:
                stopped = "max_steps"
                break
            losses = self._train_epoch(xa, xp, optimizer, shuffler, None if cap is None else cap - step)
            step += losses.pop("steps")
            losses["val_loss"] = self._validation_loss(xa_val, xp_val)
            self._log_epoch(epoch, step, losses, train.anchors[:LOG_SAMPLE], train.positives[:LOG_SAMPLE])
            if keeper.update(epoch, losses["val_loss"]):
                stopped = "early stopping"
                break
        keeper.restore()
        self.training = {"steps": step, "epochs": len(self.history), "best_epoch": keeper.epoch,
                         "best_val_loss": keeper.best, "stopped": stopped, "validation_pairs": int(xa_val.shape[0]),
                         "held_out_tracks": train.held_anchors is not None,
                         "max_steps": cap, "max_epochs": p["epochs"]}

    def _losses(self, xa: torch.Tensor, xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, nll, agreement) of a batch of pairs under the configured objective."""
        if self.params["objective"] == "paper":
            nll, z_a = nll_per_dim(self.transform, self.base, xa)
            nll = nll * xa.shape[1]  # the authors' NLL is the whole latent's, summed over dimensions
            z_p, _ = self.transform(xp)
            agreement = paper_agreement_loss(z_a, z_p, self.base.mode, self.base.sigma)
        else:
            nll, z = nll_per_dim(self.transform, self.base, torch.cat([xa, xp]))
            agreement = bit_agreement_loss(*z.chunk(2))
        return nll + self.params["agreement_weight"] * agreement, nll, agreement

    def _validation_loss(self, xa: torch.Tensor, xp: torch.Tensor) -> float:
        """Mean loss of the held-out pairs, in batches of ``batch_size`` (the flow in eval mode)."""
        self.transform.eval()
        size, total = self.params["batch_size"], 0.0
        with torch.no_grad():
            for start in range(0, xa.shape[0], size):
                a, b = xa[start:start + size], xp[start:start + size]
                total += float(self._losses(a, b)[0]) * a.shape[0]
        return total / xa.shape[0]

    def _train_epoch(self, xa: torch.Tensor, xp: torch.Tensor, optimizer: torch.optim.Optimizer,
                     shuffler: torch.Generator, max_steps: int | None) -> dict[str, float]:
        """One shuffled pass over the pairs (at most ``max_steps`` steps, None: no cap); mean losses
        and step count."""
        batch_size = self.params["batch_size"]
        perm = torch.randperm(xa.shape[0], generator=shuffler).to(self.device)
        sums = {"loss": 0.0, "nll": 0.0, "agreement": 0.0}
        steps = 0
        self.transform.train()
        for start in range(0, xa.shape[0], batch_size):
            if steps == max_steps:
                break
            idx = perm[start:start + batch_size]
            loss, nll, agreement = self._losses(xa[idx], xp[idx])
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
                  "random_bucket_size": balance["random_bucket_size"],
                  "normalised_entropy": balance["normalised_entropy"],
                  "bit_balance_min": float((z_a > 0).mean(axis=0).min()),
                  "bit_balance_max": float((z_a > 0).mean(axis=0).max()),
                  "pair_bit_agreement": float(((z_a > 0) == (z_p > 0)).mean())}
        self.history.append(record)
        log.info("flowhash epoch %d (step %d): loss %.4f nll %.4f agreement %.4f | bucket size %.2f "
                 "(random hash %.2f) H/K %.3f bit balance %.3f..%.3f pair agreement %.3f",
                 epoch, step, record["loss"], record["nll"], record["agreement"],
                 record["expected_bucket_size"], record["random_bucket_size"], record["normalised_entropy"],
                 record["bit_balance_min"], record["bit_balance_max"], record["pair_bit_agreement"])

    # ---- hashing -----------------------------------------------------------------------

    def latent(self, x: np.ndarray) -> np.ndarray:
        """Flow latent z [n, K] float32 of embeddings ``x`` [n, d]; the hash bits are z > 0."""
        if self.hasher is None:
            raise RuntimeError("flowhash: call fit(train) before build() or search()")
        return np.concatenate([self.hasher(self.projection(x[start:start + HASH_BATCH]))
                               for start in range(0, x.shape[0], HASH_BATCH)])

    def _build(self, db: np.ndarray) -> None:
        z = self.latent(db)
        self.codes = pack_bits(z > 0)
        kernels = self.params["kernels"]
        taus = sorted({*DIAGNOSTIC_TAUS, *([self.params["tau_db"]] if self.params["tau_db"] > 0 else [])})
        base = self.params["base"]
        self.diagnostics = latent_diagnostics(z, taus, MAX_THRESHOLD_BITS, partial(base_abs_cdf, base),
                                              partial(base_abs_pdf, base))
        if self.params["tau_db"] > 0:
            ids, codes = threshold_expansion(z, self.params["tau_db"], MAX_THRESHOLD_BITS, kernels)
            self.table = HashTable.from_entries([(codes, ids)], db, kernels)
        else:
            self.table = HashTable(self.codes, db, kernels)

    def _search(self, q: np.ndarray, k: int) -> SearchResult:
        z = self.latent(q)
        self.clock.lap("hash")
        kernels = self.params["kernels"]
        if self.query_params["tau"] > 0:
            rows, codes = threshold_expansion(z, self.query_params["tau"], MAX_THRESHOLD_BITS, kernels)
            self.clock.lap("probes")
            return self.table.search_pairs(q, [(rows, codes)], k, self.clock)
        probes = latent_probes(z, self.query_params["n_probes"], kernels)
        self.clock.lap("probes")
        return self.table.search(q, probes, k, self.clock)

    def _stats(self) -> dict[str, Any]:
        K = self.params["K"]
        flow_bytes = (0 if self.transform is None else
                      sum(t.numel() * t.element_size() for t in self.transform.state_dict().values()))
        return {
            "index_bytes": self.table.nbytes() + self.projection.nbytes + flow_bytes,
            "K": K,
            "L": 1,
            "n_buckets_total": 2 ** K,
            "bucket_counts": np.unique(self.codes, return_counts=True)[1],  # each item once: its own code
            "entries_per_item": self.table.order[0].size / max(1, self.n or self.codes.size),
            "training": dict(getattr(self, "training", {})),
            "training_curve": list(getattr(self, "history", [])),
            "projection": {"kind": self.params["projection"],
                           "training": dict(getattr(self.projection, "training", {})),
                           "curve": list(getattr(self.projection, "curve", []))},
            "latent": getattr(self, "diagnostics", {}),
        }


def _remember(key: tuple, fitted: tuple) -> None:
    _FITTED[key] = fitted
    while len(_FITTED) > _FITTED_MAX:
        _FITTED.pop(next(iter(_FITTED)))


def _identity(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)
