"""Fixtures of the query-set tests: small noise and room banks, built once per module."""
from __future__ import annotations

import pytest

from datasets.noise.synth import SynthNoiseBank
from datasets.protocol import Protocol
from datasets.rooms import SimulatedRoomBank


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthNoiseBank, SimulatedRoomBank]:
    """Small noise and room banks (two clips per noise kind, two rooms at RT60 0.3 and 0.6 s)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWHASH_BENCH_CACHE", str(tmp_path_factory.mktemp("bank-cache")))
        noise = SynthNoiseBank(Protocol(), n_per_kind=2, clip_s=8.0)
        rooms = SimulatedRoomBank(Protocol(), rt60_levels=(0.3, 0.6), rooms_per_level=2, progress=False)
        for clip in noise.clips():
            noise.load(clip.noise_id)
    return noise, rooms
