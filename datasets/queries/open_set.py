"""Open-set queries: which tracks are held out of every DB, and the role of each query.

A share of the query split's tracks (and of the val tracks, for calibration) is held out by a
stable hash of the track id, as the splits are: their excerpts are queries for songs the DB
does not hold. ``absent`` queries are scored with the test queries; ``calibration`` queries (from
held-out val tracks) only choose each method's score threshold.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from datasets.splits import unit_hash

PRESENT = "present"
ABSENT = "absent"
CALIBRATION = "calibration"
ROLES = (PRESENT, ABSENT, CALIBRATION)
ROLE = "role"  # the manifest column, only in query sets with absent queries
CALIBRATION_SPLIT = "val"
ABSENT_SALT = "absent"
MAX_ABSENT_SHARE = 0.5


def check_absent_share(share: float) -> float:
    """``share`` as a float in [0, MAX_ABSENT_SHARE]; ValueError naming it otherwise."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= MAX_ABSENT_SHARE:
        raise ValueError(f"queries.absent_share={share!r}: allowed a number in [0, {MAX_ABSENT_SHARE:g}] "
                         "(the share of each cell's queries, and of the query split's tracks, held out of the DB)")
    return float(share)


def held_out_tracks(track_ids: Iterable[str], share: float) -> set[str]:
    """The tracks held out of every DB: those whose stable hash falls below ``share``."""
    return {t for t in track_ids if unit_hash(t, ABSENT_SALT) < share}


def role_counts(per_cell: int, share: float) -> dict[str, int]:
    """Queries of each role in one condition cell: ``per_cell`` test queries of which a ``share``
    are absent, plus as many calibration queries as absent ones."""
    absent = int(round(per_cell * share))
    if share > 0 and absent == 0:
        absent = 1
    return {PRESENT: per_cell - absent, ABSENT: absent, CALIBRATION: absent}


def present_mask(manifest: pd.DataFrame) -> np.ndarray:
    """True for each query whose song is in the DB (every query of a set without a role column)."""
    if ROLE not in manifest.columns:
        return np.ones(len(manifest), dtype=bool)
    return (manifest[ROLE] == PRESENT).to_numpy()
