"""A run's folder: run.json, results.parquet, points.parquet, outcomes.parquet, and per-method
parts written as each method finishes, so an interrupted run keeps them and a re-run skips them."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from datasets.cache import atomic_write_json, atomic_write_parquet, stable_hash

RESULTS_FORMAT = 1
RUN_JSON = "run.json"
RESULTS = "results.parquet"
POINTS = "points.parquet"
OUTCOMES = "outcomes.parquet"
BUCKETS = "buckets.parquet"
PARTS = "parts"


def now() -> str:
    """UTC time stamp, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        (self.root / PARTS).mkdir(parents=True, exist_ok=True)

    def part_key(self, label: str) -> str:
        """File stem of a method configuration's part files."""
        return stable_hash(label, n=16)

    def has_part(self, label: str) -> bool:
        """Whether this method configuration finished in an earlier (possibly interrupted) run."""
        return (self.root / PARTS / f"{self.part_key(label)}.json").exists()

    def save_part(self, label: str, results: pd.DataFrame, points: pd.DataFrame, outcomes: pd.DataFrame,
                  meta: dict) -> None:
        """Store one finished method configuration (the .json marker last, so it means 'complete')."""
        key = self.part_key(label)
        atomic_write_parquet(self.root / PARTS / f"{key}.results.parquet", results)
        atomic_write_parquet(self.root / PARTS / f"{key}.points.parquet", points)
        atomic_write_parquet(self.root / PARTS / f"{key}.outcomes.parquet", outcomes)
        atomic_write_json(self.root / PARTS / f"{key}.json", {"label": label, **meta})

    def combine(self, labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Concatenate the parts of ``labels`` into results/points/outcomes files; returns results, points."""
        frames: dict[str, list[pd.DataFrame]] = {"results": [], "points": [], "outcomes": []}
        for label in labels:
            key = self.part_key(label)
            for kind in frames:
                frames[kind].append(pd.read_parquet(self.root / PARTS / f"{key}.{kind}.parquet"))
        combined = {kind: pd.concat(parts, ignore_index=True) for kind, parts in frames.items()}
        atomic_write_parquet(self.root / BUCKETS, self.bucket_histograms(labels))
        atomic_write_parquet(self.root / RESULTS, combined["results"])
        atomic_write_parquet(self.root / POINTS, combined["points"])
        atomic_write_parquet(self.root / OUTCOMES, combined["outcomes"])
        return combined["results"], combined["points"]

    def bucket_histograms(self, labels: list[str]) -> pd.DataFrame:
        """Occupancy histograms of ``labels`` from their parts' meta (``label``, ``size``, ``n_buckets``:
        how many buckets hold ``size`` items; sizes with no bucket left out). Methods without buckets,
        and parts written before histograms were kept, have no rows."""
        rows = []
        for label in labels:
            meta = json.loads((self.root / PARTS / f"{self.part_key(label)}.json").read_text())
            rows += [(label, size, n) for size, n in enumerate(meta.get("occupancy") or []) if n]
        frame = pd.DataFrame(rows, columns=["label", "size", "n_buckets"])
        return frame.astype({"size": "int64", "n_buckets": "int64"})

    def write_run_json(self, info: dict) -> None:
        """Write run.json (merged over an existing one so earlier start times are kept)."""
        path = self.root / RUN_JSON
        old = json.loads(path.read_text()) if path.exists() else {}
        atomic_write_json(path, {**old, **info, "results_format": RESULTS_FORMAT})
