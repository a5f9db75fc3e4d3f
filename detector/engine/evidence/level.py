"""Level evidence: how far each value lies from its stream's running mean, in running sigmas.

The forecast residual sees a step; it does not see a value that drifted (or jumped and stayed)
far from what the stream usually shows, once the model has followed it. The normaliser's
running mean and variance already describe "usual" (half-life `normalizer_halflife` events), so
the level evidence is the largest |z| over the stream's metrics, unclipped, in the allowed
direction of each metric, as a normal tail level with Bonferroni over the metrics.
"""

from __future__ import annotations

import numpy as np

from detector.engine.calibration_tail import normal_level
from detector.engine.direction import one_sided, signed


def deviation(y: np.ndarray, valid: np.ndarray, mean: np.ndarray, unit: np.ndarray,
              count: np.ndarray) -> np.ndarray:
    """Unclipped z-scores [B, D] of compressed values against the statistics before them;
    0 where invalid or never seen."""
    return np.where(valid & (count > 0), (y - mean) / unit, 0.0)


def level(z: np.ndarray, valid: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Surprise level [B] of the largest deviation in its metric's allowed direction."""
    worst = np.where(valid, signed(z, direction), -1.0).max(axis=1)
    sides = np.where(one_sided(direction, valid), 1, 2)
    square = np.where(worst >= 0, worst * worst, np.nan)
    return normal_level(square, valid.sum(axis=1), sides)
