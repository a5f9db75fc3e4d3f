"""Pass 3 of a segment, calibration: each event's residuals → its surprise (the largest squared
standardised residual over its metrics) → a calibrated score in [0, 1] that means the same
rarity on every stream (detector/engine/calibrator.py), then the stream's calibration
statistics take the event in. Wave by wave: a stream's next event is judged by statistics
that include this one."""

from __future__ import annotations

import numpy as np

from detector.engine import calibrator, normalizer
from detector.engine.observe import Observed
from detector.engine.types import EngineConfig


def calibrate(config: EngineConfig, a: dict[str, np.ndarray], bounds: list[tuple[int, int]],
              s_all: np.ndarray, obs: Observed, residual: np.ndarray, valid: np.ndarray,
              n_valid: np.ndarray) -> np.ndarray:
    """The calibrated score of every event of the segment (before any alert rule)."""
    halflife = config.calibration_halflife
    # The first events are normalised against a handful of values and forecast from an
    # empty state; their residuals say nothing about the stream, so the calibration
    # history starts halfway through the warm-up.
    learn = obs.seen >= max(2 * config.window, config.warmup_events // 2)
    residual_y = residual * obs.unit
    min_var = normalizer.resolution(obs.mean) ** 2
    prior_var = obs.unit ** 2
    scores = np.empty(s_all.size)
    for lo, hi in bounds:
        s, r, v, mv, lw = (s_all[lo:hi], residual_y[lo:hi], valid[lo:hi], min_var[lo:hi],
                           learn[lo:hi])
        res_var, res_count = a["res_var"][s], a["res_count"][s]
        worst = calibrator.surprise(r, v, res_var, mv)
        history = a["surprise_hist"][s]
        scores[lo:hi] = calibrator.score(worst, n_valid[lo:hi], history)
        var2, count2 = calibrator.update(r, v, res_var, res_count, mv, prior_var[lo:hi],
                                         halflife)
        a["res_var"][s] = np.where(lw[:, None], var2, res_var)
        a["res_count"][s] = np.where(lw, count2, res_count)
        a["surprise_hist"][s] = calibrator.remember(history, worst, lw, halflife)
    return scores
