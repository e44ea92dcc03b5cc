"""Vectors an outside encoder computed: ``encoder: precomputed:DIR``.

``bench export-audio`` writes the audio a run embeds and the ids of every row; an outside encoder
embeds it and writes DIR in this layout (docs/adding-an-encoder.md, "Precomputed vectors"):

    vectors.json                 {"encoder": NAME, "dim": D, "metric": "ip",
                                  "protocol": {"sample_rate": SR, "segment_s": S, "hop_s": H}}
    db.npy, db.ids               DB segment rows, float32 [n, D]; ids "TRACK_ID:SEGMENT", one a line
    queries.npy, queries.ids     query segment rows; ids "QUERY_ID:J"
    train-fit-anchors.npy, train-fit-positives.npy, train-fit.ids            (learned methods only)
    train-held-out-anchors.npy, train-held-out-positives.npy, train-held-out.ids   ids "fit:I", "held-out:I"

Every matrix is checked as it is read: its count against its ids file, its ids against the ids
the run expects (in order), its dimension, and finite values. Each failure names the file and the
first bad row. The rows are L2-normalised here when they are not (the suite ranks by inner product).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from datasets.cache import file_sha256
from datasets.protocol import Protocol

from .interface import Encoder, EncoderError

FORMAT = "vectors.json"
MATRICES = ("db", "queries")
PAIR_PARTS = ("fit", "held-out")
NORM_TOLERANCE = 1e-3


def db_ids(track_ids: list[str] | np.ndarray, segments: list[int] | np.ndarray) -> list[str]:
    """The ids of DB segment rows: ``TRACK_ID:SEGMENT``."""
    return [f"{t}:{int(s)}" for t, s in zip(track_ids, segments)]


def query_ids(query_ids: list[str] | np.ndarray, js: list[int] | np.ndarray) -> list[str]:
    """The ids of query segment rows: ``QUERY_ID:J``."""
    return [f"{q}:{int(j)}" for q, j in zip(query_ids, js)]


def pair_ids(part: str, n: int) -> list[str]:
    """The ids of ``n`` train pairs of ``part`` (``fit`` or ``held-out``): ``PART:I``."""
    return [f"{part}:{i}" for i in range(n)]


def write_ids(path: Path, ids: list[str]) -> None:
    """One id a line; refuses ids holding a line break."""
    if any("\n" in i or "\r" in i for i in ids):
        raise ValueError(f"{path}: an id holds a line break")
    path.write_text("".join(f"{i}\n" for i in ids))


class PrecomputedEncoder(Encoder):
    """Rows read from a folder of precomputed vectors; it cannot embed new audio."""

    name = "precomputed"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        meta_path = self.folder / FORMAT
        if not meta_path.is_file():
            raise EncoderError(f"precomputed vectors {self.folder}: no {FORMAT} (see docs/adding-an-encoder.md)")
        try:
            meta = json.loads(meta_path.read_text())
            protocol = Protocol(**meta["protocol"])
            self.dim, self.metric = int(meta["dim"]), str(meta.get("metric", "ip"))
            self.source = str(meta["encoder"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EncoderError(f"{meta_path}: needs 'encoder', 'dim', 'metric' and 'protocol' "
                               f"{{sample_rate, segment_s, hop_s}} ({type(exc).__name__}: {exc})") from exc
        self.protocol = protocol
        self.sample_rate, self.segment_s, self.hop_s = protocol.sample_rate, protocol.segment_s, protocol.hop_s
        self.params = {"dir": str(self.folder.resolve())}
        self.record = meta.get("record", {}) if isinstance(meta.get("record", {}), dict) else {}
        self._sha: str | None = None

    @property
    def label(self) -> str:
        """``precomputed:DIR (ENCODER)``."""
        return f"precomputed:{self.folder} ({self.source})"

    @property
    def weights_sha256(self) -> str:  # type: ignore[override]
        """sha256 over every file of the folder (names and bytes): the vectors' identity."""
        if self._sha is None:
            h = hashlib.sha256()
            for path in sorted(p for p in self.folder.iterdir() if p.is_file()):
                h.update(path.name.encode() + b"\0" + file_sha256(path).encode())
            self._sha = h.hexdigest()
        return self._sha

    def check_protocol(self, protocol: Protocol) -> None:
        """The vectors' protocol must equal the run's, hop included (ids count segments on its grid)."""
        if protocol != self.protocol:
            raise EncoderError(f"{self.folder / FORMAT}: vectors of protocol {self.protocol.to_dict()}; the run's is "
                               f"{protocol.to_dict()} (segment numbers count hops, so the hop must match too)")

    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """Refused: precomputed vectors hold only the rows they were given."""
        raise EncoderError(f"{self.label}: precomputed vectors cannot embed new audio ({len(waveforms)} segments "
                           f"asked); a run with them reads its rows from the folder")

    def rows(self, stem: str, expected_ids: list[str]) -> np.ndarray:
        """``stem.npy`` checked against ``stem.ids`` and ``expected_ids`` (see module docstring)."""
        matrix_path, ids_path = self.folder / f"{stem}.npy", self.folder / f"{stem}.ids"
        return self._read(matrix_path, ids_path, expected_ids)

    def pairs(self, part: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` (anchor, positive) rows of train part ``part``."""
        if part not in PAIR_PARTS:
            raise ValueError(f"part={part!r}: allowed {', '.join(PAIR_PARTS)}")
        ids_path = self.folder / f"train-{part}.ids"
        out = []
        for side in ("anchors", "positives"):
            path = self.folder / f"train-{part}-{side}.npy"
            out.append(self._read(path, ids_path, pair_ids(part, n), prefix=True))
        return out[0], out[1]

    def _read(self, matrix_path: Path, ids_path: Path, expected: list[str], prefix: bool = False) -> np.ndarray:
        for path in (matrix_path, ids_path):
            if not path.is_file():
                raise EncoderError(f"{path}: missing (precomputed vectors need it for this run; see "
                                   f"docs/adding-an-encoder.md)")
        ids = ids_path.read_text().splitlines()
        try:
            matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise EncoderError(f"{matrix_path}: not a readable .npy file ({exc})") from exc
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise EncoderError(f"{matrix_path}: shape {matrix.shape}; expected [rows, {self.dim}] ({FORMAT}'s dim)")
        if len(matrix) != len(ids):
            raise EncoderError(f"{matrix_path}: {len(matrix)} rows, but {ids_path.name} lists {len(ids)} ids")
        too_few = len(ids) < len(expected)
        if too_few or (len(ids) != len(expected) and not prefix):
            raise EncoderError(f"{matrix_path}: {len(ids)} rows; this run needs {len(expected)}"
                               + (" or more" if prefix else ""))
        for row, (got, want) in enumerate(zip(ids, expected)):
            if got != want:
                raise EncoderError(f"{ids_path}: row {row} is {got!r}; the run expects {want!r} there "
                                   f"(rows must follow the export manifest's order)")
        rows = np.array(matrix[:len(expected)], dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            raise EncoderError(f"{matrix_path}: row {bad[0]} ({expected[bad[0]]!r}) holds NaN or infinite values "
                               f"({bad.size} rows do)")
        norms = np.linalg.norm(rows, axis=1)
        if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
            zero = np.flatnonzero(norms == 0)
            if zero.size:
                raise EncoderError(f"{matrix_path}: row {zero[0]} ({expected[zero[0]]!r}) is all zeros")
            rows /= norms[:, None]
        return np.ascontiguousarray(rows)
