"""A NumPy replay of a trained flow's forward pass (data -> latent), for hashing.

Hashing one query through nflows costs about 1.5 ms of torch per-operation overhead for a
network this small, which would swamp FlowHash's search time; the same arithmetic in NumPy
on float32 takes a fraction of that. Only the layers FlowHash builds are supported
(ActNorm, AffineCouplingTransform with a ReLU ResidualNet conditioner, Permutation); the
log-determinant is not computed. Tests check it against ``Flow.transform_to_noise``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from nflows.nn.nets import ResidualNet
from nflows.transforms import ActNorm, AffineCouplingTransform, CompositeTransform, Permutation


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


@dataclass
class _Coupling:
    """ActNorm followed by an affine coupling, as plain arrays (weights stored transposed)."""

    scale: np.ndarray          # ActNorm exp(log_scale)
    shift: np.ndarray          # ActNorm shift
    identity: np.ndarray       # features passed through (and fed to the conditioner)
    transform: np.ndarray      # features scaled and shifted
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # initial, (w1, w2) per block..., final
    n_blocks: int = 0
    permutation: np.ndarray | None = None  # applied after the coupling

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x * self.scale + self.shift
        x_id = np.take(x, self.identity, axis=1)  # x[:, idx] would be F-ordered: slow matmul
        w, b = self.layers[0]
        h = x_id @ w + b
        for i in range(self.n_blocks):
            (w1, b1), (w2, b2) = self.layers[1 + 2 * i], self.layers[2 + 2 * i]
            h = h + np.maximum(np.maximum(h, 0) @ w1 + b1, 0) @ w2 + b2
        w, b = self.layers[-1]
        params = h @ w + b
        n = self.transform.size
        # nflows: scale = sigmoid(raw + 2) + 1e-3, written with tanh to avoid exp overflow
        scale = 0.5 * (1.0 + np.tanh(0.5 * (params[:, n:] + 2.0))) + 1e-3
        out = np.empty_like(x)
        out[:, self.identity] = x_id
        out[:, self.transform] = np.take(x, self.transform, axis=1) * scale + params[:, :n]
        return out if self.permutation is None else np.take(out, self.permutation, axis=1)


class NumpyFlow:
    """Forward pass of a FlowHash ``CompositeTransform`` in NumPy float32."""

    def __init__(self, steps: list[_Coupling]) -> None:
        """Use ``from_transform`` to build one."""
        self.steps = steps

    @classmethod
    def from_transform(cls, transform: CompositeTransform) -> "NumpyFlow":
        """Copy the weights of ``[ActNorm, AffineCouplingTransform, Permutation] * n`` into arrays."""
        layers = list(transform._transforms)
        steps: list[_Coupling] = []
        i = 0
        while i < len(layers):
            actnorm, coupling = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(actnorm, ActNorm) or not isinstance(coupling, AffineCouplingTransform):
                raise TypeError(f"unsupported layer sequence at {i}: {type(actnorm).__name__}, "
                                f"{type(coupling).__name__}")
            net = coupling.transform_net
            if (not isinstance(net, ResidualNet) or net.context_features is not None
                    or any(b.use_batch_norm or b.activation is not F.relu for b in net.blocks)):
                raise TypeError("unsupported coupling conditioner: only ResidualNet with ReLU, "
                                "no batch norm, no context")
            linears = [net.initial_layer] + [lin for block in net.blocks for lin in block.linear_layers]
            step = _Coupling(
                scale=_np(torch.exp(actnorm.log_scale)), shift=_np(actnorm.shift),
                identity=coupling.identity_features.cpu().numpy(),
                transform=coupling.transform_features.cpu().numpy(),
                layers=[(_np(lin.weight).T.copy(), _np(lin.bias)) for lin in linears + [net.final_layer]],
                n_blocks=len(net.blocks))
            i += 2
            if i < len(layers) and isinstance(layers[i], Permutation):
                step.permutation = layers[i]._permutation.cpu().numpy()
                i += 1
            steps.append(step)
        return cls(steps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Latent of ``x`` [n, K] (float32)."""
        z = np.ascontiguousarray(x, dtype=np.float32)
        for step in self.steps:
            z = step(z)
        return z
