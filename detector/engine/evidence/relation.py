"""Relation evidence: the metrics of a stream leaving the way they usually move together.

bytes_out creeping up while bytes_in does not, or packets rising without bytes: each metric
alone stays within its usual range, and the forecast follows a slow change step by step, but
the vector of the stream's z-scores lies far outside their usual joint spread. Each stream
keeps a running second moment M of its z-scores (half-life `RELATION_HALFLIFE` events); an
event's evidence is the Mahalanobis distance z' (M + eps I)^-1 z, a chi-square with one degree
of freedom per valid metric. eps keeps metrics that never move (a flat counter) from making
every wobble infinitely rare. Streams of one metric have no relation to break (their level
evidence says it all).
"""

from __future__ import annotations

import numpy as np

from detector.engine.calibration_tail import chi2_level

RELATION_HALFLIFE = 2_000.0
RIDGE = 0.005          # eps, in z units squared
Z_LIMIT = 50.0         # z beyond this is as far as it gets for the distance
LEARN_LIMIT = 4.0      # z enters the moment clipped here, so an incident does not teach it
                       # that anything goes


def level(z: np.ndarray, valid: np.ndarray, parts: np.ndarray, direction: np.ndarray
          ) -> np.ndarray:
    """Surprise level [B] of the deviations z [B, D] whose `terms` are `parts`. The distance
    takes every deviation as it is (zeroing one would break the very relation it measures);
    it counts only when the metric that contributes most to it moves an allowed way."""
    n_valid = valid.sum(axis=1)
    distance = parts.sum(axis=1)
    top = np.argmax(np.where(valid, parts, -np.inf), axis=1)
    rows = np.arange(z.shape[0])
    against = direction[rows, top] * z[rows, top] < 0
    return np.where((n_valid >= 2) & ~against, chi2_level(distance, n_valid), 0.0)


def terms(z: np.ndarray, valid: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Each metric's term [B, D] of the distance z' (M + eps I)^-1 z (they sum to it): how
    much of the break of the relation goes through that metric."""
    zc = np.where(valid, np.clip(z, -Z_LIMIT, Z_LIMIT), 0.0)
    a = moment.astype(np.float64) + RIDGE * np.eye(z.shape[1])
    return zc * np.linalg.solve(a, zc[..., None])[..., 0]


def update(moment: np.ndarray, z: np.ndarray, valid: np.ndarray, seen: np.ndarray,
           learn: np.ndarray) -> np.ndarray:
    """The moment with this event's deviations taken in (rows where `learn`, pairs of metrics
    the event carries): an exact mean over the first events, then exponentially weighted."""
    rate = np.maximum(1.0 - 0.5 ** (1.0 / RELATION_HALFLIFE), 1.0 / (seen + 1.0))
    zw = np.where(valid, np.clip(z, -LEARN_LIMIT, LEARN_LIMIT), 0.0)
    outer = zw[:, :, None] * zw[:, None, :]
    new = moment + rate[:, None, None] * (outer - moment)
    # Only pairs of metrics the event carries: a missing value is not a z of 0.
    both = valid[:, :, None] & valid[:, None, :]
    return np.where(learn[:, None, None] & both, new, moment).astype(moment.dtype)
