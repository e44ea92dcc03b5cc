"""The normalizing flow behind FlowHash, built from nflows parts, and its two losses.

Flow: ``n_blocks`` RealNVP affine coupling layers (``nflows.transforms.AffineCouplingTransform``,
alternating masks, ``ResidualNet`` conditioners), each preceded by an ``ActNorm`` and
followed by a fixed random permutation, all in one ``CompositeTransform``. Base density:
per dimension the two-mode mixture 0.5 N(-2, 1) + 0.5 N(2, 1) (``"gmm"``) or N(0, 1)
(``"normal"``). Hash bits are the signs of the latent.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from nflows.distributions.base import Distribution
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.nn.nets import ResidualNet
from nflows.transforms import ActNorm, AffineCouplingTransform, CompositeTransform, RandomPermutation
from nflows.utils import torchutils
from scipy.stats import norm

BASES = ("gmm", "normal")


class TwoModeGaussian(Distribution):
    """Independent dimensions, each 0.5 N(-mode, sigma^2) + 0.5 N(+mode, sigma^2)."""

    def __init__(self, features: int, mode: float = 2.0, sigma: float = 1.0) -> None:
        """A ``features``-dim product of symmetric two-mode Gaussian mixtures."""
        super().__init__()
        self.features = features
        self.mode = float(mode)
        self.sigma = float(sigma)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries device and dtype

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if inputs.shape[1:] != (self.features,):
            raise ValueError(f"expected inputs of shape [n, {self.features}], got {tuple(inputs.shape)}")
        log_norm = math.log(0.5) - 0.5 * math.log(2 * math.pi) - math.log(self.sigma)
        lo = -0.5 * ((inputs + self.mode) / self.sigma) ** 2
        hi = -0.5 * ((inputs - self.mode) / self.sigma) ** 2
        return torchutils.sum_except_batch(torch.logaddexp(lo, hi) + log_norm, num_batch_dims=1)

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        shape = (num_samples, self.features)
        signs = torch.randint(0, 2, shape, device=self._anchor.device).to(self._anchor.dtype) * 2 - 1
        return signs * self.mode + self.sigma * torch.randn(shape, device=self._anchor.device)

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        return self._anchor.new_zeros(self.features)


def base_distribution(kind: str, features: int) -> Distribution:
    """The latent base density: ``"gmm"`` (two modes at +-2, sigma 1) or ``"normal"``."""
    if kind == "gmm":
        return TwoModeGaussian(features, mode=2.0, sigma=1.0)
    if kind == "normal":
        return StandardNormal([features])
    raise ValueError(f"base={kind!r} is not allowed; choose one of: {', '.join(BASES)}")


def base_std(kind: str) -> float:
    """Standard deviation of one base dimension (sqrt(1 + 2^2) for the two-mode mixture)."""
    return math.sqrt(5.0) if kind == "gmm" else 1.0


def make_transform(features: int, n_blocks: int, hidden_features: int) -> CompositeTransform:
    """ActNorm -> affine coupling -> random permutation, ``n_blocks`` times, as one transform.

    Draws its random permutations and initial weights from torch's global generator; seed it first.
    """
    def conditioner(in_features: int, out_features: int) -> torch.nn.Module:
        net = ResidualNet(in_features, out_features, hidden_features=hidden_features, num_blocks=2)
        # zero output layer: every coupling starts as a constant per-dimension scale, so the
        # untrained flow keeps the signs of the (mean-centred) projection
        torch.nn.init.zeros_(net.final_layer.weight)
        torch.nn.init.zeros_(net.final_layer.bias)
        return net

    layers: list[torch.nn.Module] = []
    for i in range(n_blocks):
        mask = torchutils.create_alternating_binary_mask(features, even=(i % 2 == 0))
        layers += [ActNorm(features), AffineCouplingTransform(mask, conditioner), RandomPermutation(features)]
    return CompositeTransform(layers)


def make_flow(transform: CompositeTransform, base: Distribution) -> Flow:
    """The nflows ``Flow`` of ``transform`` (data -> latent) over ``base``."""
    return Flow(transform, base)


def nll_per_dim(transform: CompositeTransform, base: Distribution,
                x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean negative log-likelihood per dimension of ``x``, and the latent of ``x``.

    One pass through the transform gives both (``Flow.log_prob`` would discard the latent).
    """
    z, logabsdet = transform(x)
    return -(base.log_prob(z) + logabsdet).mean() / x.shape[1], z


def bit_agreement_loss(z_anchor: torch.Tensor, z_positive: torch.Tensor) -> torch.Tensor:
    """Mean over pairs and dimensions of softplus(-z_a * z_p): small when each pair shares signs."""
    return F.softplus(-z_anchor * z_positive).mean()


def paper_agreement_loss(z_anchor: torch.Tensor, z_positive: torch.Tensor, mode: float = 2.0,
                         sigma: float = 1.0) -> torch.Tensor:
    """The authors' agreement term (AFP-NF ``trainer.py``): with c_k(z) = log N(z_k; mu_c, sigma^2) for
    the two modes mu_c = -mode, +mode, the mean over pairs of
    -sum_k sum_c [c_k(z_a) exp(c_k(z_p)) + c_k(z_p) exp(c_k(z_a))]. Large when anchor and positive
    sit on opposite sides of 0 near the modes (7.1 per dimension at z_a = 2, z_p = -2), small when
    they share a side; among pairs on one side it is lowest at z_a = z_p = 0 (0.63, against 0.74
    on a mode), so it pulls ambiguous pairs toward 0. The Gaussian normaliser is in each log
    density; the mixture weights 0.5 are not (as there)."""
    modes = torch.tensor([-mode, mode], dtype=z_anchor.dtype, device=z_anchor.device)
    log_norm = -0.5 * math.log(2 * math.pi) - math.log(sigma)

    def component_log_prob(z: torch.Tensor) -> torch.Tensor:  # [n, K, 2]
        return log_norm - 0.5 * ((z[..., None] - modes) / sigma) ** 2

    la, lp = component_log_prob(z_anchor), component_log_prob(z_positive)
    return -(la * lp.exp() + lp * la.exp()).sum(dim=(-1, -2)).mean()



def base_abs_cdf(kind: str, t: np.ndarray | float) -> np.ndarray:
    """P(|z_k| <= t) of one base dimension: the chance that a bit is uncertain at threshold t."""
    t = np.asarray(t, dtype=np.float64)
    if kind == "gmm":  # 0.5 N(-2, 1) + 0.5 N(2, 1) is symmetric: P(|z| <= t) = Phi(t + 2) - Phi(2 - t)
        return norm.cdf(t + 2.0) - norm.cdf(2.0 - t)
    if kind == "normal":
        return 2.0 * norm.cdf(t) - 1.0
    raise ValueError(f"base={kind!r} is not allowed; choose one of: {', '.join(BASES)}")


def base_abs_pdf(kind: str, r: np.ndarray | float) -> np.ndarray:
    """Density of |z_k| of one base dimension at r >= 0."""
    r = np.asarray(r, dtype=np.float64)
    if kind == "gmm":
        return norm.pdf(r - 2.0) + norm.pdf(r + 2.0)
    if kind == "normal":
        return 2.0 * norm.pdf(r)
    raise ValueError(f"base={kind!r} is not allowed; choose one of: {', '.join(BASES)}")
