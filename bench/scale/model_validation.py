"""Does the fingerprint model stand in for real distractors? One scaling config run twice, once
with the real-music distractors and once with the run's own DB followed by model tracks only, then
each method compared between the two at the same sweep points (fixed build and query parameters),
on the same queries, at every size:

- **exact hit rate**: the paired difference (synthetic minus real), decided "equivalent within 1
  point" when its interval lies inside [-1, +1] points, even where it also excludes 0, or not
  (:func:`bench.measure.uncertainty.decide_difference` with ``equivalence_first``);
- **candidates scored**: the ratio of means, synthetic over real, decided within 10% ("not counted"
  where the method's library does not report them, as hnswlib and ScaNN do not: then it is not
  part of the verdict);
- **latency**: the ratio of mean latencies of the queries timed in both runs, within 15%: timed
  interleaved on the two DBs (:mod:`bench.scale.model_latency`) where that was done, else as the two
  sweeps timed them, one after the other. Exhaustive search is the control: where its own ratio is
  not equivalent, no latency at that size is.

A method matches when every one of its points, at every size, is decided equivalent on all three
(on the two it has where its candidates are not counted);
a method that does not match is not measured on synthetic rows (``bench scale`` refuses it where a
config names this validation). The table names the model it validated (``model_key``, the key of
the synthetic side's fingerprint model): a run drawing its rows from another model is not gated by
it (:func:`verdicts_for_model`)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure.metrics import condition_cells
from bench.measure.operating_points import REFERENCE
from bench.measure.uncertainty import RATE_MARGIN, decide_difference, decide_ratio, paired_difference, paired_ratio
from bench.run.store import OUTCOMES, RUN_JSON
from datasets.cache import atomic_write_bytes

from .config import Distractors, ScaleConfig

REAL_DIR, SYNTHETIC_DIR = "real", "synthetic"
VALIDATION_CSV = "validation.csv"
LATENCY_PARQUET = "latency_interleaved.parquet"  # bench.scale.model_latency's
CANDIDATES_MARGIN = 1.10
LATENCY_MARGIN = 1.15
KEYS = ("label", "query_params", "n_db")
MEASURES = ("exact", "candidates", "latency")  # each with its decision column "<measure>_decision"
MODEL_KEY = "model_key"
NOT_COUNTED = "not counted"  # the candidates decision of a method whose library does not report them


def sides(config: ScaleConfig) -> dict[str, ScaleConfig]:
    """The config's two runs: its distractors (``real`` and ``fill`` as it sets them; real music in a
    scaling run) and, in their place after the run's own DB, model tracks fitted on them. With
    ``distractors.real_until``, the model side keeps the real distractors up to that many rows and
    the model, fitted on those alone, stands in for the real rows past them: a held-out test."""
    d = config.distractors
    return {REAL_DIR: replace(config, distractors=Distractors(real=d.real, fill=d.fill)),
            SYNTHETIC_DIR: replace(config, distractors=Distractors(real=d.real, fill=d.fill, model=True,
                                                                   real_until=d.real_until))}


def _equivalent(decision: str) -> bool:
    return decision.startswith("equivalent")


def first_miss(row: pd.Series | dict) -> str | None:
    """The first measure of a validation row not decided equivalent, with its decision
    ("candidates lower"), or None when the row matches."""
    for measure in MEASURES:
        decision = str(row[f"{measure}_decision"])
        if not _equivalent(decision) and decision != NOT_COUNTED:
            return f"{measure} {decision}"
    return None


def validation_table(real: pd.DataFrame, synthetic: pd.DataFrame, sizes: list[int] | None = None,
                     seed: int = 0, latency: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sweep point and size (of ``sizes``, default all) measured in both runs (``real``
    and ``synthetic``: the runs' outcomes tables): the three comparisons, their intervals and
    decisions, and whether the point ``matches`` (all three equivalent). The latency comes from
    ``latency`` (the interleaved timing's rows: label, query_params, n_db, query_id,
    latency_real_ms, latency_synthetic_ms) for the points it holds (``latency_source``
    "interleaved"), else from the two runs' own timing ("sweeps")."""
    rows = []
    if sizes is not None:
        synthetic = synthetic[synthetic["n_db"].isin(sizes)]
    for key, syn in synthetic.groupby(list(KEYS), sort=True):
        mask = np.logical_and.reduce([real[k] == v for k, v in zip(KEYS, key)])
        ref = real[mask]
        if ref.empty:
            continue
        ref = ref.set_index("query_id").loc[syn["query_id"]]
        cells = condition_cells(syn)
        exact = paired_difference(syn["exact"].to_numpy(), ref["exact"].to_numpy(), cells, seed=seed)
        cand = paired_ratio(syn["candidates"].to_numpy(), ref["candidates"].to_numpy(), cells, seed=seed)
        counted = bool(np.isfinite(syn["candidates"]).any() or np.isfinite(ref["candidates"]).any())
        lat_syn, lat_real, source = syn["latency_ms"].to_numpy(), ref["latency_ms"].to_numpy(), "sweeps"
        if latency is not None:
            mine = latency[np.logical_and.reduce([latency[k] == v for k, v in zip(KEYS, key)])]
            if len(mine):
                mine = mine.set_index("query_id").reindex(syn["query_id"])
                lat_syn, lat_real = mine["latency_synthetic_ms"].to_numpy(), mine["latency_real_ms"].to_numpy()
                source = "interleaved"
        timed = ~np.isnan(lat_syn) & ~np.isnan(lat_real)
        lat = paired_ratio(lat_syn[timed], lat_real[timed], cells[timed], seed=seed)
        row = {"method": syn["method"].iat[0] if "method" in syn else key[0].split("(")[0],
               **dict(zip(KEYS, key)), "queries": len(syn), "timed_queries": int(timed.sum()),
               "exact_real": float(ref["exact"].mean()), "exact_synthetic": float(syn["exact"].mean()),
               "exact_diff": exact.difference.estimate, "exact_diff_lo": exact.difference.low,
               "exact_diff_hi": exact.difference.high,
               "exact_decision": decide_difference(exact.difference, RATE_MARGIN, equivalence_first=True),
               "candidates_real": float(ref["candidates"].mean()),
               "candidates_synthetic": float(syn["candidates"].mean()),
               "candidates_ratio": cand.estimate, "candidates_lo": cand.low, "candidates_hi": cand.high,
               "candidates_decision": (decide_ratio(cand, CANDIDATES_MARGIN) if counted else NOT_COUNTED),
               "latency_source": source,
               "latency_real_ms": float(lat_real[timed].mean()) if timed.any() else np.nan,
               "latency_synthetic_ms": float(lat_syn[timed].mean()) if timed.any() else np.nan,
               "latency_ratio": lat.estimate, "latency_lo": lat.low, "latency_hi": lat.high,
               "latency_decision": decide_ratio(lat, LATENCY_MARGIN)}
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        _apply_control(table)
        table["matches"] = [first_miss(r) is None for r in table.to_dict("records")]
    return table


def _apply_control(table: pd.DataFrame) -> None:
    """Exhaustive search does the same work on both DBs: where its latency at a size is not decided
    equivalent, the timing there could not tell the DBs apart from the machine, and every other
    point's latency at that size is "control not equivalent" (not a match)."""
    ref = table[table["method"] == REFERENCE].set_index("n_db")["latency_decision"]
    for n, decision in ref.items():
        if not _equivalent(decision):
            others = (table["n_db"] == n) & (table["method"] != REFERENCE)
            table.loc[others, "latency_decision"] = f"control not equivalent ({REFERENCE} {decision})"


def method_verdicts(table: pd.DataFrame) -> dict[str, bool]:
    """Whether each method matches at every point and size of the validation."""
    return {m: bool(g["matches"].all()) for m, g in table.groupby("method")}


def compare_sides(root: Path | str, seed: int) -> pd.DataFrame:
    """:func:`validation_table` of the two finished sides in ``root`` (``real/``, ``synthetic/``) at
    the sizes holding model rows, with the interleaved latency where ``root`` holds it, written to
    ``root/validation.csv``."""
    root = Path(root)
    real, synthetic = (pd.read_parquet(root / side / OUTCOMES) for side in (REAL_DIR, SYNTHETIC_DIR))
    latency = pd.read_parquet(root / LATENCY_PARQUET) if (root / LATENCY_PARQUET).is_file() else None
    table = validation_table(real, synthetic, model_sizes(root), seed=seed, latency=latency)
    table[MODEL_KEY] = validated_model(root)
    atomic_write_bytes(root / VALIDATION_CSV, table.to_csv(index=False).encode())
    return table


def side_info(root: Path | str, side: str = SYNTHETIC_DIR) -> dict:
    """The run.json of one side (``real`` or ``synthetic``) of the validation in ``root``."""
    return json.loads((Path(root) / side / RUN_JSON).read_text())


def model_sizes(root: Path | str) -> list[int]:
    """The sizes of a validation in ``root`` whose synthetic side holds model rows."""
    return [f["n_db"] for f in side_info(root)["db"]["sizes"] if f["synthetic_distractor_segments"]]


def validated_model(root: Path | str) -> str:
    """The key of the fingerprint model whose rows the synthetic side of the validation in ``root`` holds."""
    return side_info(root)["fingerprint_model"]["key"]


def verdicts_for_model(table: pd.DataFrame, model_key: str, where: Path | str) -> dict[str, bool]:
    """:func:`method_verdicts` of a validation ``table`` (read from ``where``), for a run whose model
    rows come from the fingerprint model ``model_key``: a clear error where the table validated
    another model, or does not say which."""
    validated = set(table[MODEL_KEY].dropna().astype(str)) if MODEL_KEY in table else set()
    if validated != {model_key}:
        found = ", ".join(sorted(validated)) or f"none (no {MODEL_KEY} column: it predates the check)"
        raise ValueError(f"{where}: validated fingerprint model {found}, but this run's model rows come from "
                         f"model {model_key}; validate this model first (bench scale --validate-model with that "
                         f"validation's config; its finished sides are reused and compared again)")
    return method_verdicts(table)


def read_validation(path: Path | str) -> pd.DataFrame:
    """A validation table written by ``bench scale --validate-model`` (``validation.csv``)."""
    path = Path(path)
    if path.is_dir():
        path = path / VALIDATION_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no fingerprint-model validation there; run bench scale --validate-model")
    return pd.read_csv(path)
