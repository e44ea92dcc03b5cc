"""Parsing and validating the query-condition grid: durations, SNRs and reverb levels."""
from __future__ import annotations

import math

SNR_RANGE_DB = (-20.0, 60.0)
DURATION_RANGE_S = (1.0, 60.0)
RT60_RANGE_S = (0.1, 2.0)
CLEAN = "clean"
DRY = "none"


def _number(value: object, what: str, allowed: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number; allowed: {allowed}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} {value!r} is not finite; allowed: {allowed}")
    return x


def parse_snr(value: object) -> float | None:
    """'clean' -> None (no noise); otherwise an SNR in dB within SNR_RANGE_DB."""
    if isinstance(value, str) and value.strip().lower() == CLEAN:
        return None
    lo, hi = SNR_RANGE_DB
    allowed = f"'{CLEAN}' or a number of dB in [{lo:g}, {hi:g}]"
    x = _number(value, "SNR", allowed)
    if not lo <= x <= hi:
        raise ValueError(f"SNR {x:g} dB is out of range; allowed: {allowed}")
    return x


def parse_duration(value: object, min_s: float = DURATION_RANGE_S[0]) -> float:
    """A query duration in seconds within [segment length, 60 s]."""
    hi = DURATION_RANGE_S[1]
    allowed = f"seconds in [{min_s:g}, {hi:g}] (at least one DB segment)"
    x = _number(value, "query duration", allowed)
    if not min_s <= x <= hi:
        raise ValueError(f"query duration {x:g} s is out of range; allowed: {allowed}")
    return x


def parse_reverb(value: object) -> float | None:
    """'none' -> None (dry); otherwise a target RT60 in seconds within RT60_RANGE_S."""
    if value is None or (isinstance(value, str) and value.strip().lower() == DRY):
        return None
    lo, hi = RT60_RANGE_S
    allowed = f"'{DRY}' or an RT60 in seconds in [{lo:g}, {hi:g}]"
    x = _number(value, "reverb RT60", allowed)
    if not lo <= x <= hi:
        raise ValueError(f"reverb RT60 {x:g} s is out of range; allowed: {allowed}")
    return x


def snr_label(snr: float | None) -> str:
    """Condition label of an SNR: 'clean' or the dB value ('20', '-5', '2.5')."""
    return CLEAN if snr is None else f"{snr:g}"


def reverb_label(rt60: float | None) -> str:
    """Condition label of a reverb level: 'none' or the RT60 ('0.3')."""
    return DRY if rt60 is None else f"{rt60:g}"



def _same_condition(value: object) -> object:
    """The value a condition compares by: 'clean', 'none' and None are one value; 1 and 1.0 another."""
    if value is None or (isinstance(value, str) and value.strip().lower() in (CLEAN, DRY)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def check_distinct(where: str, values: tuple | list, none_label: str = CLEAN) -> None:
    """Raise ValueError naming ``where`` and the value when a condition value repeats: a repeat
    would draw the same queries again and count them as independent ones."""
    seen: dict[object, object] = {}
    for value in values:
        key = _same_condition(value)
        if key in seen:
            first = seen[key]
            shown = none_label if key is None else f"{key:g}" if isinstance(key, float) else repr(key)
            spelled = f" (given as {first!r} and {value!r})" if repr(first) != repr(value) else ""
            raise ValueError(f"{where}: {shown} appears twice{spelled}; list each condition value once")
        seen[key] = value
