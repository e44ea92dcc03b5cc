"""What the suite asks of an encoder: the interface every encoder plugin implements.

An encoder turns equal-length waveform segments into one float32 vector each. The suite cuts the
segments (DB tracks on the run's hop grid, query audio, training pairs), so an encoder states
only the signal it expects (sample rate, segment length, its own hop for reference), its output
dimension and metric, and who it is (``identity``: what enters the embedding cache's key and
run.json). docs/adding-an-encoder.md walks through writing one.
"""
from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod

import numpy as np

from datasets.protocol import Protocol

METRICS = ("ip",)  # inner product of L2-normalised rows: what every method and the exact search rank by


class EncoderError(ValueError):
    """An encoder that cannot serve this run, or that returned unusable rows; the message names it."""


class Encoder(ABC):
    """An audio-fingerprint encoder.

    Subclasses set ``name`` (how configs select it), ``sample_rate``, ``segment_s``, ``hop_s``
    (the hop it was trained or designed for; a run's DB hop may differ), ``dim`` and ``metric``,
    and write :meth:`embed`. One with weights sets ``weights_sha256`` (the sha256 of its weights
    file) and keeps its constructor's keyword arguments in ``params``: both enter
    :attr:`identity`. ``record`` may hold the encoder's training record: a ``config`` entry with
    the degradation recipe of its own training pairs (see ``encoders.pairs.pair_recipe``).
    """

    name: str = ""
    sample_rate: int = 8000
    segment_s: float = 1.0
    hop_s: float = 0.5
    dim: int = 0
    metric: str = "ip"
    weights_sha256: str | None = None
    params: dict = {}
    record: dict = {}

    @classmethod
    def open(cls, protocol: Protocol, device: str = "cpu", **params: object) -> "Encoder":
        """The encoder a run builds: ``cls(**params)`` (the run's encoder_params); override to load
        weights for the run's ``protocol`` or to build on ``device`` directly."""
        return cls(**params)

    @abstractmethod
    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """float32 ``[n, dim]`` rows, L2-normalised, of float32 waveform segments ``[n, samples]``
        (``samples = round(segment_s * sample_rate)``, mono, about [-1, 1])."""

    @property
    def identity(self) -> dict:
        """What fixes this encoder's output: its name, the sha256 of the module that defines it, its
        weights' sha256 (None without weights) and its parameters. Recorded in run.json."""
        return {"name": self.name, "class": type(self).__qualname__, "module_sha256": module_sha256(type(self)),
                "weights_sha256": self.weights_sha256, "params": dict(self.params)}

    @property
    def sha256(self) -> str:
        """The hex key of :attr:`identity`: embeddings are cached under it."""
        from datasets.cache import stable_hash

        return stable_hash(self.identity, n=64)

    @property
    def label(self) -> str:
        """How errors name the encoder: its name, quoted."""
        return repr(self.name)

    def to(self, device: str) -> "Encoder":
        """This encoder on ``device`` (``cpu``, ``cuda``, ...); encoders that run on CPU only return self."""
        return self

    def check_protocol(self, protocol: Protocol) -> None:
        """Raise EncoderError unless the run's ``protocol`` has this encoder's sample rate and
        segment length (the DB hop only places segments, so it may differ)."""
        if protocol.sample_rate != self.sample_rate or abs(protocol.segment_s - self.segment_s) > 1e-9:
            raise EncoderError(f"encoder {self.label} embeds {self.segment_s} s segments at {self.sample_rate} Hz; "
                               f"the run's protocol has {protocol.segment_s} s at {protocol.sample_rate} Hz "
                               f"(the corpus's sample rate and segment_s must match the encoder's)")


def module_sha256(cls: type) -> str:
    """sha256 of the source file that defines ``cls`` (its code's identity)."""
    source = inspect.getsourcefile(cls)
    if source is None:
        raise EncoderError(f"encoder {cls.__module__}.{cls.__qualname__}: its source file cannot be found")
    with open(source, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_rows(encoder: Encoder, rows: object, n: int) -> np.ndarray:
    """``rows`` as the float32 ``[n, encoder.dim]`` C-contiguous array ``embed`` must return, or an
    EncoderError naming the encoder, what it returned and what was expected."""
    if not isinstance(rows, np.ndarray):
        raise EncoderError(f"encoder {encoder.label}: embed returned {type(rows).__name__}, not a numpy array")
    if rows.shape != (n, encoder.dim):
        raise EncoderError(f"encoder {encoder.label}: embed returned shape {rows.shape} for {n} segments; "
                           f"expected ({n}, {encoder.dim}) (its dim)")
    return np.ascontiguousarray(rows, dtype=np.float32)


def check_declaration(encoder: Encoder) -> None:
    """Raise EncoderError naming the attribute unless the encoder's declared fields are usable."""
    where = f"encoder {type(encoder).__module__}.{type(encoder).__qualname__}"
    if not encoder.name or not isinstance(encoder.name, str):
        raise EncoderError(f"{where}: 'name' must be a non-empty string")
    if not isinstance(encoder.dim, int) or encoder.dim < 1:
        raise EncoderError(f"{where} ({encoder.name!r}): dim={encoder.dim!r}: allowed integers >= 1")
    if encoder.metric not in METRICS:
        raise EncoderError(f"{where} ({encoder.name!r}): metric={encoder.metric!r}: allowed {', '.join(METRICS)} "
                           f"(return L2-normalised rows)")
    try:
        Protocol(int(encoder.sample_rate), float(encoder.segment_s), float(encoder.hop_s))
    except (TypeError, ValueError) as exc:
        raise EncoderError(f"{where} ({encoder.name!r}): {exc}") from exc
