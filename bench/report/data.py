"""Load and validate a finished run folder for the report: run.json, results, points, buckets.

Nothing is recomputed: the report reads what ``bench run`` stored. A folder from another
results format, or a file missing a column the report needs, is refused with an error that
names the file and what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.run.store import BUCKETS, OPEN_SET, OUTCOMES, PARTS, POINTS, RESULTS, RESULTS_FORMAT, RUN_JSON, TRAINING
from methods.common.balance import floor_bucket_size, random_bucket_size

from .tables import method_sort_key

SWEEP_COLUMNS = ("method", "label", "build_params", "query_params", "param_index", "exact", "near", "track",
                 "latency_mean_ms", "candidates_mean")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    RESULTS: (*SWEEP_COLUMNS, "duration_s", "snr", "reverb", "n_queries"),
    POINTS: (*SWEEP_COLUMNS, "latency_p99_ms", "candidates_frac", "qps", "fit_s", "build_s", "index_bytes",
             "n_db", "n_queries"),
    BUCKETS: ("label", "size", "n_buckets"),
}
RUN_KEYS = ("run_id", "config", "environment")


class ReportDataError(ValueError):
    """A run folder the report cannot read: missing file, column or key, or another format."""


@dataclass(frozen=True)
class RunData:
    """One run's stored results, sorted so everything built from them is deterministic."""

    root: Path
    info: dict
    results: pd.DataFrame
    points: pd.DataFrame
    buckets: pd.DataFrame
    outcomes: pd.DataFrame | None = None  # per query per sweep point (for paired comparisons), when stored
    training: dict = field(default_factory=dict)  # label -> training record, curve, latent diagnostics (training.json)
    open_set: pd.DataFrame | None = None  # an open-set run's absent and calibration queries' outcomes

    @property
    def run_id(self) -> str:
        """The run's name (its folder name when it was written)."""
        return str(self.info["run_id"])

    @property
    def methods(self) -> list[str]:
        """Methods in the run: the exhaustive reference first, then by name."""
        return sorted(set(self.points["method"]), key=method_sort_key)


def _read_run_json(root: Path) -> dict:
    path = root / RUN_JSON
    if not path.is_file():
        raise ReportDataError(f"{path}: not found; is {root} a run folder written by `bench run`?")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportDataError(f"{path}: not valid JSON ({exc})") from None
    found = info.get("results_format")
    if found is None:
        raise ReportDataError(f"{path}: no results_format (written by an older bench version); this version reads "
                              f"results format {RESULTS_FORMAT}: re-run `bench run` to regenerate the results")
    if found != RESULTS_FORMAT:
        raise ReportDataError(f"{path}: results_format {found!r} is not the current results format {RESULTS_FORMAT}; "
                              f"re-run `bench run` with this version to regenerate the results")
    missing = [k for k in RUN_KEYS if k not in info]
    if missing:
        raise ReportDataError(f"{path}: missing key(s) {missing}")
    return info


def read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a parquet file and check it holds the ``required`` columns (error names file and columns)."""
    if not path.is_file():
        raise ReportDataError(f"{path}: not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportDataError(f"{path}: cannot be read as parquet ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ReportDataError(f"{path}: missing column(s) {missing} (results format {RESULTS_FORMAT} has them); "
                              f"was it written by another bench version?")
    return frame


def _with_balance_references(table: pd.DataFrame) -> pd.DataFrame:
    """Results written before the balance references existed get them from N, the bucket count and
    the expected bucket size they hold (methods.common.balance defines them)."""
    needed = ("balance_n", "balance_n_buckets_total", "balance_expected_bucket_size")
    if "balance_expected_vs_random" in table or not all(c in table for c in needed):
        return table
    n, buckets, expected = (table[c].astype(float) for c in needed)
    table = table.copy()
    table["balance_random_bucket_size"] = random_bucket_size(n, buckets)
    table["balance_floor_bucket_size"] = floor_bucket_size(n, buckets)
    table["balance_expected_vs_random"] = expected / table["balance_random_bucket_size"]
    table["balance_expected_vs_floor"] = expected / table["balance_floor_bucket_size"]
    return table


def _with_intervals(points: pd.DataFrame, outcomes: pd.DataFrame | None, seed: int) -> pd.DataFrame:
    """Points written before the hit rates carried intervals get them from the stored per-query
    outcomes, computed as ``bench run`` computes them now (bench.measure.metrics.overall_intervals)."""
    from bench.measure.metrics import CONDITION, LEVELS, overall_intervals

    if outcomes is None or "exact_lo" in points or not set(CONDITION) <= set(outcomes.columns):
        return points
    levels = tuple(lv for lv in LEVELS if lv in outcomes.columns)
    found = {key: overall_intervals(g, levels, seed)
             for key, g in outcomes.groupby(["label", "query_params"], sort=False)}
    extra = pd.DataFrame([found.get((lab, qp), {}) for lab, qp in zip(points["label"], points["query_params"])],
                         index=points.index)
    return pd.concat([points, extra], axis=1)


def _check_finished(root: Path) -> None:
    """Refuse a folder without the combined tables a finished run writes: an unfinished run (run.json
    or parts only) with the command that finishes it, or a folder with nothing of a run."""
    if (root / RESULTS).is_file() and (root / POINTS).is_file():
        return
    if not (root / RUN_JSON).is_file() and not (root / PARTS).is_dir():
        if (root / RESULTS).is_file() or (root / POINTS).is_file():
            return  # tables without run.json: _read_run_json names what is missing
        raise ReportDataError(f"{root} is not a run folder: it holds no {RUN_JSON}, {RESULTS} or {PARTS}/; give the "
                              f"folder `python -m bench run` wrote (its --run-dir, or reports/<corpus>-<hash>)")
    finished = len(list((root / PARTS).glob("*.json")))
    try:
        methods = json.loads((root / RUN_JSON).read_text()).get("methods") or []
    except (OSError, ValueError, AttributeError):
        methods = []
    ran = f"; methods: {', '.join(map(str, methods))}" if methods else ""
    raise ReportDataError(f"{root}: unfinished run: {finished} method configuration(s) finished ({PARTS}/*.json), "
                          f"no {RESULTS} yet (it is written when every configuration is done); finish it with: "
                          f"python -m bench run --run-dir {root} (with the --config and --method it was started "
                          f"with{ran}), then report it again")


def load_run(root: Path | str) -> RunData:
    """Load and validate a run folder; ``buckets.parquet`` is optional (runs before it have no histograms)."""
    root = Path(root)
    if not root.is_dir():
        raise ReportDataError(f"{root}: not a folder")
    _check_finished(root)
    info = _read_run_json(root)
    results = read_table(root / RESULTS, REQUIRED_COLUMNS[RESULTS])
    points = read_table(root / POINTS, REQUIRED_COLUMNS[POINTS])
    if (root / BUCKETS).exists():
        buckets = read_table(root / BUCKETS, REQUIRED_COLUMNS[BUCKETS])
    else:
        buckets = pd.DataFrame({"label": pd.Series(dtype=str), "size": pd.Series(dtype="int64"),
                                "n_buckets": pd.Series(dtype="int64")})
    for path, table in ((root / POINTS, points), (root / RESULTS, results)):
        if table.empty:
            raise ReportDataError(f"{path}: no rows, so there is nothing to report; run `python -m bench run "
                                  f"--run-dir {root}` to finish the run first")
    results, points = (_with_balance_references(t) for t in (results, points))
    results = results.sort_values(["method", "label", "param_index", "duration_s", "snr", "reverb"],
                                  kind="mergesort").reset_index(drop=True)
    points = points.sort_values(["method", "label", "param_index"], kind="mergesort").reset_index(drop=True)
    buckets = buckets.sort_values(["label", "size"], kind="mergesort").reset_index(drop=True)
    outcomes = None
    if (root / OUTCOMES).exists():
        outcomes = read_table(root / OUTCOMES, ("query_id", "duration_s", "snr", "reverb", "exact", "label",
                                                "query_params"))
    points = _with_intervals(points, outcomes, int(info.get("seed", 0) or 0))
    training = json.loads((root / TRAINING).read_text()) if (root / TRAINING).exists() else {}
    open_set = (read_table(root / OPEN_SET, ("role", "score", "exact", "label", "query_params"))
                if (root / OPEN_SET).exists() else None)
    return RunData(root=root, info=info, results=results, points=points, buckets=buckets, outcomes=outcomes,
                   training=training, open_set=open_set)
