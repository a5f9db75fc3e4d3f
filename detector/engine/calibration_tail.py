"""Surprise levels → score: the rarity of an event on *its own* stream, one scale for all.

Every piece of evidence (forecast residual, level, relation, range) reduces an event to a
*level* u = -log10 Q, Q being the chance of a surprise at least this large if the stream's
statistic followed its textbook distribution (normal residuals, chi-square distances).
Real telemetry does not: crash counts, latencies and flat server metrics have heavy tails, and
a daily step the model has not learnt recurs every day. So each stream keeps, per evidence, a
decayed histogram of its own past levels, and once surprises at least as high as this one have
been seen `HABIT_COUNT` times, the level is lowered to -log10 of how often they happened: the
empirical tail of the stream's own surprises, with the textbook tail as its prior while the
stream is young or the surprise is beyond anything it has seen. A habit dampens a surprise, it
does not silence it: each tenfold by which the textbook level exceeds the habit's adds one
level back (`rarity`), so a host whose recurring incidents are a thousand times beyond its
textbook still alerts on each, while a routine bump the textbook rates a few times rarer than
its habit stays quiet. A histogram forgets at the slower of a half per `halflife` events and a
half per `HALFLIFE_S` seconds of the stream's time (`keep`): a week, whatever the sampling
rate, so a stream sampled every minute remembers last week's routine as well as one sampled
every five.

The score is level / LEVEL_AT_ONE clipped to [0, 1]: score s means an event this unusual
happens with probability 10^(-7 s) on that stream (0.7: about 1 in 80,000).
All functions are pure and vectorised over streams (rows).
"""

from __future__ import annotations

import numpy as np
import torch

LEVEL_AT_ONE = 7.0     # the level that scores 1
HABIT_COUNT = 4.0      # surprises at least this high seen this often are the stream's habit
                       # (3 / 4 / 5, standard score at the shipped threshold: NAB 61.6 / 60.3 /
                       # 57.3, SMD 54.9 / 64.3 / 67.5, traffic 89.9 / 89.6 / 89.6; 4 has the
                       # smallest worst loss against the best count on each corpus)
YOUNG_WEIGHT = 0.7     # a stream without a tail of its own yet scores its textbook levels at
TRUSTED_COUNT = 1_000.0  # this weight, rising to 1 as its tail's (decayed) count reaches this
HALFLIFE_S = 7 * 86_400.0  # a tail forgets no faster than a half per week of its stream's time
LEARN_AFTER = 256      # events before a stream's own surprises enter its histogram: the
                       # statistics behind the first ones are still settling
# Lower bin edges: 0.25 apart up to level 4, then half octaves up to 2^17.
EDGES = np.concatenate((np.arange(0.0, 4.0, 0.25), 4.0 * 2.0 ** (np.arange(0, 31) / 2.0)))
N_LEVEL_BINS = EDGES.size
FIRST_OCTAVE_BIN = int(np.searchsorted(EDGES, 4.0))  # from level 4: the first half octave
_LN10 = float(np.log(10.0))


def normal_level(square: np.ndarray, n_valid: np.ndarray, sides: int | np.ndarray = 2
                 ) -> np.ndarray:
    """Level of the largest of n_valid squared standard-normal values being at least `square`
    (Bonferroni over the metrics, `sides` = 2 for |z|, 1 for one direction); 0 without any
    valid metric (NaN square)."""
    x = np.fmax(np.asarray(square, dtype=np.float64), 0.0)
    x[x == np.inf] = 1e300
    log_tail = torch.special.log_ndtr(torch.from_numpy(-np.sqrt(x))).numpy()
    log_q = np.log(sides * np.maximum(n_valid, 1)) + log_tail
    return np.where(n_valid > 0, np.maximum(-log_q / _LN10, 0.0), 0.0)


def chi2_level(distance: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Level of a chi-square variable with `dof` degrees of freedom being at least
    `distance`; 0 where dof is 0. Far in the tail, where the upper incomplete gamma function
    underflows, its leading asymptotic term is used."""
    a = torch.from_numpy(np.maximum(dof, 1).astype(np.float64) / 2.0)
    x = torch.from_numpy(np.maximum(np.asarray(distance, dtype=np.float64), 0.0) / 2.0)
    q = torch.special.gammaincc(a, x)
    asymptotic = (a - 1.0) * torch.log(torch.clamp(x, min=1e-300)) - x - torch.lgamma(a)
    log_q = torch.where(q > 1e-280, torch.log(torch.clamp(q, min=1e-300)), asymptotic)
    return np.where(dof > 0, np.maximum(-log_q.numpy() / _LN10, 0.0), 0.0)


def level_bin(level: np.ndarray) -> np.ndarray:
    """Histogram bin of each level (NaN and negative levels count as 0)."""
    return np.searchsorted(EDGES, np.fmax(level, 0.0), side="right") - 1


def rarity(level: np.ndarray, history: np.ndarray, creep: int | np.ndarray = 0
           ) -> np.ndarray:
    """The level, lowered to -log10 of the stream's own frequency of surprises at least this
    high once those have been seen HABIT_COUNT times (level [...], history [..., N_LEVEL_BINS]:
    any leading shape, e.g. [evidence, stream]).

    `creep` (broadcast over level): above level 4, surprises up to that many half-octave bins
    lower count as sightings of this one, so a recurring surprise whose level creeps up
    because the spread it is measured against narrows stays the habit it was.

    A habit h is damped, not silenced: the level is h + log10(u / max(h, 1)) (never above u),
    one level back per tenfold by which the textbook level u exceeds the habit's."""
    at_least = np.cumsum(history[..., ::-1], axis=-1, dtype=np.float64)[..., ::-1]
    u = np.fmax(level, 0.0)
    own = level_bin(u)
    counted_from = np.where(own > FIRST_OCTAVE_BIN,
                            np.maximum(own - creep, FIRST_OCTAVE_BIN), own)
    seen = np.take_along_axis(at_least, counted_from[..., None], axis=-1)[..., 0]
    total = at_least[..., 0]
    habitual = -np.log10(np.maximum(seen, 1e-300) / np.maximum(total, 1.0))
    # The textbook tail is a prior: until the stream's own tail holds enough surprises to
    # correct it, its rare levels are taken with a discount (telemetry's tails are heavier).
    trust = YOUNG_WEIGHT + (1.0 - YOUNG_WEIGHT) * np.minimum(total / TRUSTED_COUNT, 1.0)
    return np.where(seen >= HABIT_COUNT, damped(habitual, u), u * trust)


def damped(habit: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The level `level` of a surprise that is a habit of level `habit`: habit + log10(level /
    max(habit, 1)), never above the level itself; one level back per tenfold beyond the habit."""
    u = np.fmax(level, 0.0)
    back = np.maximum(np.log10(np.maximum(u, 1e-300) / np.maximum(habit, 1.0)), 0.0)
    return np.minimum(u, habit + back)


def keep(halflife: float, dt: np.ndarray | None = None) -> np.ndarray | float:
    """What one event's decay keeps of a tail: the slower of a half per `halflife` events and,
    given the seconds `dt` [B] since the tail's last event, a half per HALFLIFE_S seconds."""
    per_event = 0.5 ** (1.0 / halflife)
    if dt is None:
        return per_event
    return np.maximum(per_event, 0.5 ** (np.maximum(dt, 0.0) / HALFLIFE_S))


def remember(history: np.ndarray, level: np.ndarray, learn: np.ndarray, halflife: float,
             dt: np.ndarray | None = None) -> np.ndarray:
    """History [..., B, N] with each learning row's level [..., B] counted (NaN: nothing to
    count), older counts decayed by `keep` (half-life in events; with `dt` [B], the seconds
    since each row's last counted event, no faster than a half per HALFLIFE_S); `learn` [B]."""
    decay = keep(halflife, dt)
    if dt is not None:  # in the histogram's own precision: a float64 factor would upcast it
        decay = decay.astype(history.dtype)[:, None]
    out = np.where(learn[:, None], history * decay, history)
    counted = np.nonzero(learn & ~np.isnan(level))
    out[(*counted, level_bin(level[counted]))] += 1.0
    return out


def score(level: np.ndarray) -> np.ndarray:
    """Score in [0, 1] of a level."""
    return np.clip(np.fmax(level, 0.0) / LEVEL_AT_ONE, 0.0, 1.0)
