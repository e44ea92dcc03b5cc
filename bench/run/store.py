"""A run's folder: run.json, results.parquet, points.parquet, outcomes.parquet (open_set.parquet
for an open-set run), and per-method parts written as each method finishes, so an interrupted run
keeps them and a re-run skips them."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from datasets.cache import atomic_write_json, atomic_write_parquet, file_sha256, flat_differences, stable_hash
from datasets.queries.open_set import ROLE, present_mask

RESULTS_FORMAT = 1
RUN_JSON = "run.json"
RESULTS = "results.parquet"
POINTS = "points.parquet"
OUTCOMES = "outcomes.parquet"
OPEN_SET = "open_set.parquet"  # an open-set run's absent and calibration queries' outcomes
BUCKETS = "buckets.parquet"
TRAINING = "training.json"  # learned hashes' training records, curves and latent diagnostics, by label
TRAINING_KEYS = ("training", "training_curve", "projection", "latent")
PARTS = "parts"
PART_TABLES = ("results", "points", "outcomes")


def now() -> str:
    """UTC time stamp, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunStoreError(ValueError):
    """A run folder that cannot be used as asked: another configuration's, or not a folder."""


class RunStore:
    """Reads and writes one run folder. A folder belongs to one configuration (``identity``): run.json
    records it, and so does every finished part, with the sha256 of each of its tables."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.bound_identity: dict | None = None  # what check_identity last accepted; saved parts record it
        if self.root.exists() and not self.root.is_dir():
            raise RunStoreError(f"run folder {self.root} is a file; give a folder (--out / --run-dir)")
        for parent in self.root.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise RunStoreError(f"cannot make run folder {self.root}: {parent} is a file, not a folder")
                break

    def identity(self) -> dict | None:
        """The identity recorded in run.json by the run that made this folder (None when it has none)."""
        path = self.root / RUN_JSON
        if not path.exists():
            return None
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunStoreError(f"{path}: damaged run.json ({exc}); delete the folder {self.root} to start over, "
                                f"or pass --force") from None
        if "identity" in info:
            return info["identity"]
        old = {"config": info.get("config"),  # a run.json written before identities were recorded
               "encoder_sha256": (info.get("encoder") or {}).get("sha256"),
               "queryset_content_hash": (info.get("queryset") or {}).get("content_hash")}
        return {k: v for k, v in old.items() if v is not None} or None

    def recorded_identities(self) -> list[tuple[str, dict]]:
        """(where, identity) of run.json and of every finished part that recorded one."""
        found = []
        run = self.identity()
        if run is not None:
            found.append((RUN_JSON, run))
        for marker in sorted((self.root / PARTS).glob("*.json")):
            try:
                meta = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue  # a damaged part is run again (part_meta says so)
            if isinstance(meta, dict) and isinstance(meta.get("identity"), dict):
                found.append((f"{PARTS}/{marker.name} ({meta.get('label')})", meta["identity"]))
        return found

    def check_identity(self, identity: dict, force: bool, ignore: tuple[str, ...] = (),
                       members: tuple[str, ...] = ()) -> None:
        """Refuse a folder made for another identity (config, encoder, query set), naming the fields
        that differ and where they are recorded (run.json, or a part when run.json is gone); with
        ``force``, discard the folder's results and start over. Fields at the dotted paths of
        ``ignore`` may differ (settings that change what is combined, not what a part measured); the
        lists and mappings at the dotted paths of ``members`` may gain or lose entries (e.g. the
        methods: each part measures one) but not change one. Parts saved afterwards record ``identity``."""
        identity = json.loads(json.dumps(identity))  # as run.json holds it: tuples become lists
        for where, old in self.recorded_identities():
            old = {k: old.get(k) for k in identity if k in old}
            new = {k: v for k, v in identity.items() if k in old}
            differing = [d for d in flat_differences(old, new)
                         if d not in ignore and not _membership(old, new, d, members)]
            if not differing:
                continue
            if not force:
                shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
                raise RunStoreError(f"{self.root} holds a run of another configuration ({where} differs: {shown}); "
                                    f"a run folder belongs to one configuration. Choose another --run-dir (or leave "
                                    f"it out: the default folder is named by the configuration), or pass --force to "
                                    f"discard its results and start over")
            print(f"{self.root}: --force: discarding the results of another configuration "
                  f"({where}: {', '.join(differing[:8])})")
            self.clear()
            break
        self.bound_identity = identity

    def clear(self) -> None:
        """Remove what a run wrote into the folder (parts, tables, run.json, report, figures)."""
        shutil.rmtree(self.root / PARTS, ignore_errors=True)
        shutil.rmtree(self.root / "figures", ignore_errors=True)
        for name in (RUN_JSON, RESULTS, POINTS, OUTCOMES, OPEN_SET, BUCKETS, "report.md", "report.html"):
            (self.root / name).unlink(missing_ok=True)

    def part_key(self, label: str) -> str:
        """File stem of a method configuration's part files."""
        return stable_hash(label, n=16)

    def part_meta(self, label: str) -> tuple[dict | None, str | None]:
        """(meta of a finished part, None), (None, None) when there is none, or (None, why) when its
        files are damaged (unreadable marker or tables, or a table whose sha256 is not the one
        recorded when it was saved): such a part is run again."""
        key = self.part_key(label)
        marker = self.root / PARTS / f"{key}.json"
        if not marker.exists():
            return None, None
        try:
            meta = json.loads(marker.read_text())
            for kind in (*PART_TABLES, *(["open_set"] if "open_set" in (meta.get("sha256") or {}) else [])):
                table = self.root / PARTS / f"{key}.{kind}.parquet"
                recorded = (meta.get("sha256") or {}).get(kind)
                if recorded is not None and file_sha256(table) != recorded:
                    return None, f"{table.name} does not match the sha256 recorded when it was saved"
                pq.read_metadata(table)
        except Exception as exc:  # noqa: BLE001 - any unreadable part file means the part must be redone
            return None, f"{marker.name} or its tables: {type(exc).__name__}: {exc}"
        return meta, None

    def save_part(self, label: str, results: pd.DataFrame, points: pd.DataFrame, outcomes: pd.DataFrame,
                  meta: dict) -> None:
        """Store one finished method configuration (the .json marker last, so it means 'complete'),
        with the identity the folder was bound to and the sha256 of each table. Outcomes of an
        open set's absent and calibration queries go to their own table, so the outcomes table
        holds the present queries alone, as the hit rates count them."""
        (self.root / PARTS).mkdir(parents=True, exist_ok=True)
        key = self.part_key(label)
        digests = {}
        tables = {"results": results, "points": points, "outcomes": outcomes}
        if ROLE in outcomes.columns and not outcomes.empty:
            present = present_mask(outcomes)
            tables.update(outcomes=outcomes[present], open_set=outcomes[~present])
        for kind, frame in tables.items():
            path = self.root / PARTS / f"{key}.{kind}.parquet"
            atomic_write_parquet(path, frame)
            digests[kind] = file_sha256(path)
        extra = {"identity": self.bound_identity} if self.bound_identity is not None else {}
        atomic_write_json(self.root / PARTS / f"{key}.json", {"label": label, **meta, **extra, "sha256": digests})

    def part_table(self, label: str, kind: str) -> pd.DataFrame:
        """One table (``results``, ``points`` or ``outcomes``) of the finished part of ``label``."""
        return pd.read_parquet(self.root / PARTS / f"{self.part_key(label)}.{kind}.parquet")

    def combine(self, labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Concatenate the parts of ``labels`` into results/points/outcomes files; returns results, points."""
        frames: dict[str, list[pd.DataFrame]] = {"results": [], "points": [], "outcomes": [], "open_set": []}
        for label in labels:
            for kind in frames:
                if kind != "open_set" or (self.root / PARTS / f"{self.part_key(label)}.{kind}.parquet").exists():
                    frames[kind].append(self.part_table(label, kind))
        combined = {kind: pd.concat(parts, ignore_index=True) for kind, parts in frames.items() if parts}
        if "open_set" in combined:
            atomic_write_parquet(self.root / OPEN_SET, combined["open_set"])
        atomic_write_parquet(self.root / BUCKETS, self.bucket_histograms(labels))
        atomic_write_json(self.root / TRAINING, self.training_records(labels))
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
            meta = self._part_json(label)
            rows += [(label, size, n) for size, n in enumerate(meta.get("occupancy") or []) if n]
        frame = pd.DataFrame(rows, columns=["label", "size", "n_buckets"])
        return frame.astype({"size": "int64", "n_buckets": "int64"})

    def _part_json(self, label: str) -> dict:
        """The meta of the finished part of ``label``, as written (no checks)."""
        return json.loads((self.root / PARTS / f"{self.part_key(label)}.json").read_text())

    def training_records(self, labels: list[str]) -> dict[str, dict]:
        """What each of ``labels`` recorded of its training and latent (``TRAINING_KEYS`` of its
        stats), from their parts' meta; labels that recorded none are left out."""
        out = {}
        for label in labels:
            stats = self._part_json(label).get("stats") or {}
            kept = {k: stats[k] for k in TRAINING_KEYS if stats.get(k)}
            if kept:
                out[label] = kept
        return out

    def write_run_json(self, info: dict) -> None:
        """Write run.json (merged over an existing one so earlier start times are kept)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / RUN_JSON
        old = json.loads(path.read_text()) if path.exists() else {}
        atomic_write_json(path, {**old, **info, "results_format": RESULTS_FORMAT})


def _value_at(tree: object, path: str) -> object:
    """The value at a dotted path of a JSON-like tree (None where there is none)."""
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _membership(old: dict, new: dict, path: str, members: tuple[str, ...]) -> bool:
    """Whether the difference at ``path`` is an entry added to, or removed from, a list or mapping
    named in ``members`` (not an entry changed)."""
    if path in members:
        return isinstance(_value_at(old, path), list) and isinstance(_value_at(new, path), list)
    parent = path.rpartition(".")[0]
    return parent in members and (_value_at(old, path) is None or _value_at(new, path) is None)
