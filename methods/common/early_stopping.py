"""Early stopping on a held-out loss: keep the best epoch's weights, stop when patience runs out."""
from __future__ import annotations

import math

from torch import nn


class BestEpoch:
    """Tracks a module's held-out loss epoch by epoch: keeps a copy of its weights whenever the
    loss improves by more than ``min_delta``, and says when ``patience`` epochs have passed
    without an improvement."""

    def __init__(self, module: nn.Module, patience: int, min_delta: float) -> None:
        """Watch ``module``; nothing kept yet."""
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.best, self.epoch, self.since = math.inf, 0, 0
        self._state: dict | None = None

    def update(self, epoch: int, loss: float) -> bool:
        """Record ``epoch``'s held-out ``loss``; True when training should stop."""
        if loss < self.best - self.min_delta:
            self.best, self.epoch, self.since = loss, epoch, 0
            self._state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return False
        self.since += 1
        return self.since >= self.patience

    def restore(self) -> None:
        """Load the best epoch's weights back into the module (if any epoch was recorded)."""
        if self._state is not None:
            self.module.load_state_dict(self._state)
