"""The evaluation protocol's signal parameters, shared by datasets and encoders."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Protocol:
    """Sample rate and DB segmentation every corpus, query set and encoder agrees on.

    Defaults follow NAFP (Chang et al. 2021): 8 kHz mono, 1 s segments, 0.5 s hop.
    """

    sample_rate: int = 8000
    segment_s: float = 1.0
    hop_s: float = 0.5

    def __post_init__(self) -> None:
        if self.sample_rate < 1000 or self.sample_rate > 96000:
            raise ValueError(f"sample_rate={self.sample_rate}: allowed 1000..96000 Hz")
        if not 0.1 <= self.segment_s <= 10.0:
            raise ValueError(f"segment_s={self.segment_s}: allowed 0.1..10 s")
        if not 0.0 < self.hop_s <= self.segment_s:
            raise ValueError(f"hop_s={self.hop_s}: allowed (0, segment_s={self.segment_s}] s")

    @property
    def segment_samples(self) -> int:
        """Samples in one DB segment."""
        return int(round(self.segment_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        """Samples between the starts of consecutive DB segments."""
        return int(round(self.hop_s * self.sample_rate))

    def n_segments(self, n_samples: int) -> int:
        """Number of whole segments a signal of ``n_samples`` holds on the hop grid."""
        if n_samples < self.segment_samples:
            return 0
        return (n_samples - self.segment_samples) // self.hop_samples + 1

    def to_dict(self) -> dict:
        """Plain-dict form for JSON records."""
        return asdict(self)
