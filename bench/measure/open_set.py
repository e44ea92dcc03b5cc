"""Open-set measures: a score threshold chosen on calibration queries for songs in no DB, and the
true- and false-positive rates it gives on the test queries (definitions in docs/protocol.md).

A query's score is its answer's confidence: the summed score of its offset-aligned vote (summed
similarity for the embedding methods, aligned landmark counts for audfprint). An answer is
accepted when its score is above the threshold; a true positive is a present query whose accepted
answer is an exact hit; a false positive is an absent query whose answer is accepted.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from datasets.queries.open_set import ABSENT, CALIBRATION, PRESENT, ROLE

from .uncertainty import wilson_interval

FPR_TARGETS = (0.01, 0.001)
TRUE_POSITIVE_LEVEL = "exact"


def fpr_key(fpr: float) -> str:
    """The column suffix of a false-positive target: 0.01 -> '1pct', 0.001 -> '0p1pct'."""
    return f"{fpr * 100:g}".replace(".", "p") + "pct"


def calibrated_threshold(scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold at which at most a share ``fpr`` of ``scores`` lies above it (answers are
    accepted when their score is strictly above). With fewer than 1/fpr scores it is their maximum."""
    if len(scores) == 0:
        return math.nan
    allowed = int(math.floor(fpr * len(scores) + 1e-9))
    return float(np.sort(np.asarray(scores, dtype=np.float64))[::-1][min(allowed, len(scores) - 1)])


def has_meaningful_score(scores: np.ndarray) -> bool:
    """Whether scores can rank answers at all: at least two distinct finite values."""
    finite = np.asarray(scores, dtype=np.float64)
    return len(np.unique(finite[np.isfinite(finite)])) >= 2


def open_set_measures(outcomes: pd.DataFrame) -> dict[str, float]:
    """The open-set columns of one sweep point, from the outcomes of all its queries (``role``,
    ``score`` and the hit levels): for each of ``FPR_TARGETS`` the calibrated threshold, the test
    true-positive rate and false-positive rate with Wilson intervals; {} for a closed query set."""
    if ROLE not in outcomes.columns:
        return {}
    role = outcomes[ROLE].to_numpy()
    score = outcomes["score"].to_numpy(dtype=np.float64)
    present, absent, calibration = role == PRESENT, role == ABSENT, role == CALIBRATION
    hit = outcomes[TRUE_POSITIVE_LEVEL].to_numpy(dtype=bool)
    out: dict[str, float] = {"n_present": int(present.sum()), "n_absent": int(absent.sum()),
                             "n_calibration": int(calibration.sum()),
                             "score_meaningful": has_meaningful_score(score[present | calibration])}
    for fpr in FPR_TARGETS:
        key = fpr_key(fpr)
        threshold = calibrated_threshold(score[calibration], fpr)
        accepted = score > threshold
        tp = wilson_interval(int((accepted & hit & present).sum()), int(present.sum()))
        fp = wilson_interval(int((accepted & absent).sum()), int(absent.sum()))
        out.update({f"threshold_{key}": threshold, f"tpr_{key}": tp.estimate, f"tpr_{key}_lo": tp.low,
                    f"tpr_{key}_hi": tp.high, f"fpr_{key}": fp.estimate, f"fpr_{key}_lo": fp.low,
                    f"fpr_{key}_hi": fp.high,
                    f"resolved_{key}": bool(calibration.sum() * fpr >= 1)})
    return out


def roc_points(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The test ROC of one sweep point: for every threshold, the share of absent queries accepted
    (``fpr``) and of present queries accepted with an exact hit (``tpr``)."""
    role = outcomes[ROLE].to_numpy()
    present, absent = role == PRESENT, role == ABSENT
    score = outcomes["score"].to_numpy(dtype=np.float64)
    hit = outcomes[TRUE_POSITIVE_LEVEL].to_numpy(dtype=bool)
    thresholds = np.unique(score[np.isfinite(score)])[::-1]
    accepted_absent = (score[absent][None, :] > thresholds[:, None]).mean(axis=1) if absent.any() else 0 * thresholds
    good = score[present & hit]
    tpr = (good[None, :] > thresholds[:, None]).sum(axis=1) / max(int(present.sum()), 1)
    frame = pd.DataFrame({"threshold": thresholds, "fpr": accepted_absent, "tpr": tpr})
    edges = pd.DataFrame({"threshold": [np.inf, -np.inf], "fpr": [0.0, float(np.isfinite(score[absent]).mean())
                                                                 if absent.any() else 0.0],
                          "tpr": [0.0, float(np.isfinite(good).sum() / max(int(present.sum()), 1))]})
    return pd.concat([edges.iloc[:1], frame, edges.iloc[1:]], ignore_index=True)
