"""Fixtures shared by the method tests."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from methods import TrainData


@pytest.fixture(scope="session")
def make_pairs() -> Callable[[int, int, int], TrainData]:
    """``make_pairs(n, d, seed)``: n unit-norm random anchors in d dimensions, each paired with a
    slightly perturbed copy (the shape of real anchor/positive train pairs)."""
    def make(n: int, d: int, seed: int) -> TrainData:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return TrainData(x, x + 0.05 * rng.standard_normal(x.shape).astype(np.float32))
    return make
