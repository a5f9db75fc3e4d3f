"""Which way a metric may alert: up, down or both, per stream and metric (glob patterns).

Users often care about one direction only: more errors is an incident, fewer is good news.
`DETECTOR_ALERT_DIRECTIONS` maps stream globs to a direction, or to a map of metric globs to
directions, e.g. {"web-*": {"errors*": "up", "*": "both"}, "cache-*": "down"}; the first
matching pattern wins, and anything unmatched alerts both ways. A stream's directions are
resolved once, when it is admitted, into one code per metric column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import numpy as np

BOTH, UP, DOWN = 0, 1, -1
CODES = {"both": BOTH, "up": UP, "down": DOWN}

Directions = Mapping[str, str | Mapping[str, str]]


def for_stream(stream: str, metrics: Sequence[str], directions: Directions) -> np.ndarray:
    """Direction code of each of the stream's metrics (int8, in column order)."""
    codes = np.zeros(len(metrics), dtype=np.int8)
    rule = next((v for pattern, v in directions.items() if fnmatchcase(stream, pattern)), None)
    if rule is None:
        return codes
    if isinstance(rule, str):
        codes[:] = CODES[rule]
        return codes
    for j, metric in enumerate(metrics):
        codes[j] = next((CODES[v] for pattern, v in rule.items()
                         if fnmatchcase(metric, pattern)), BOTH)
    return codes


def signed(value: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """How far `value` (a signed deviation) goes in its metric's allowed direction: |value|
    for both, the positive part for up, the negative part's size for down."""
    return np.where(direction == UP, np.maximum(value, 0.0),
                    np.where(direction == DOWN, np.maximum(-value, 0.0), np.abs(value)))


def allowed(value: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """`value` where its sign is allowed, 0 where its metric may not alert that way."""
    return np.where(direction * value < 0, 0.0, value)


def allowed_move(residual: np.ndarray, deviation: np.ndarray, direction: np.ndarray
                 ) -> np.ndarray:
    """The forecast residual of a one-way metric, counted only as far as the value also lies
    beyond its usual level (`deviation`, same units) that way; unchanged for both ways. After
    a drop the forecast follows the low values, so the return to normal is a rise against the
    forecast but not above the usual level: an "up" metric must not alert on it."""
    one_way = direction * np.maximum(np.minimum(direction * residual, direction * deviation),
                                     0.0)
    return np.where(direction == BOTH, residual, one_way)


def one_sided(direction: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row: every valid metric alerts in one direction only (a one-sided tail)."""
    return ((direction != BOTH) | ~valid).all(axis=1) & valid.any(axis=1)
