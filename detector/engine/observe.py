"""Pass 1 of a batch, normalisation and evidence: each event normalised against its stream's
statistics, then taken into them, into the range rule, the seasonal steps and the window the
model trains on. Wave by wave, since every step changes what the next wave sees; nothing here
depends on the model, so the waves span the whole batch (the model pass takes each segment's
rows of what this pass observed: `Observed.take`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.engine import normalizer
from detector.engine.evidence import daily, seasonal
from detector.engine.evidence import level as level_evidence
from detector.engine.evidence import range as range_rule
from detector.engine.types import EngineConfig

WINDOW_FIELDS = ("hist", "hist_valid", "hist_time", "hist_prior")
# Arena fields behind range_rule.RangeState, in its order.
RANGE_FIELDS = ("seen_min", "seen_max", "smooth", "smooth_min", "smooth_max",
                "smooth_recent_min", "smooth_recent_max", "smooth_drifting", "range_broke_at")
# Observed's fields with one row per event.
OBSERVED_ROWS = ("z", "dev", "daily", "last", "mean", "unit", "count_sigma", "seen", "age",
                 "outside", "done")
ENCODER_FIELDS = ("hist", "hist_valid", "hist_time")  # the window the encoder reads


@dataclass
class Observed:
    """What pass 1 hands on, one row per event: z (float32), the persistence prior `last`, the
    normaliser's mean and unit before the event, the sigma a count never goes below (half of
    normalizer.count_step; 0 for other metrics), the unclipped deviation from that mean,
    the daily trend's deviation from its hour's (evidence/daily.py; [rows, 0] when off),
    events seen before it, the seconds since its stream's first event, the range rule's
    verdict, whether the event completed its stream's window (`done`); the encoder's window
    inputs (ENCODER_FIELDS, [rows, K, ...]; bidirectional models only); the windows training
    takes, as (row, window arrays) in row order."""

    z: np.ndarray
    dev: np.ndarray
    daily: np.ndarray
    last: np.ndarray
    mean: np.ndarray
    unit: np.ndarray
    count_sigma: np.ndarray
    seen: np.ndarray
    age: np.ndarray
    outside: np.ndarray
    done: np.ndarray
    windows: tuple[np.ndarray, ...] = ()
    ready: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list)

    def take(self, rows: np.ndarray) -> Observed:
        """These rows, in this order."""
        at = np.full(self.z.shape[0], -1)
        at[rows] = np.arange(rows.size)
        ready = sorted(((int(at[row]), sample) for row, sample in self.ready if at[row] >= 0),
                       key=lambda item: item[0])
        return Observed(**{name: getattr(self, name)[rows] for name in OBSERVED_ROWS},
                        windows=tuple(w[rows] for w in self.windows), ready=ready)


def observe(config: EngineConfig, a: dict[str, np.ndarray], bounds: list[tuple[int, int]],
            s_all: np.ndarray, ts: np.ndarray, x: np.ndarray, y: np.ndarray,
            valid: np.ndarray, tf: np.ndarray) -> Observed:
    """Pass 1 over the waves `bounds` of a batch (streams s_all, raw values x, compressed
    values y, time features tf; `a` the arena's arrays)."""
    cfg = config
    k, n, d = cfg.window, s_all.size, cfg.max_metrics
    obs = Observed(z=np.empty((n, d), np.float32), dev=np.empty((n, d)),
                   daily=np.empty((n, d if cfg.daily_evidence else 0)),
                   last=np.empty((n, d), np.float32), mean=np.empty((n, d)), unit=np.empty((n, d)),
                   count_sigma=np.empty((n, d)),
                   seen=np.empty(n, np.int64), age=np.empty(n), outside=np.zeros(n, bool),
                   done=np.empty(n, bool))
    windows: list[list[np.ndarray]] = []
    valid32 = valid.astype(np.float32)
    spatial, seasons = cfg.spatial_margin > 0, cfg.seasonal_buckets > 0
    buckets = seasonal.bucket(ts, cfg.seasonal_buckets) if seasons else ts
    for lo, hi in bounds:
        s, v, yw = s_all[lo:hi], valid[lo:hi], y[lo:hi]
        # Stored as float32: whole numbers, exact up to 2^24, and beyond that only count > 0
        # matters (the weight 1 / count reached its floor long before).
        mean, var = a["norm_mean"][s], a["norm_var"][s]
        count = a["norm_count"][s].astype(np.float64)
        unit = normalizer.scale(mean, var)
        z = normalizer.normalise(yw, v, mean, unit, count).astype(np.float32)
        # Persistence prior in today's scale: the stored window was normalised with the
        # statistics of its own time, which drift fast while a stream is young.
        mask = a["metric_mask"][s] > 0
        last_y = a["last_y"][s]
        last_z = normalizer.normalise(last_y, mask & (count > 0), mean, unit, count)
        if seasons:
            prior = seasonal.expected_step(a, s, buckets[lo:hi], mask, unit)
            last_z = last_z + prior
        obs.z[lo:hi], obs.last[lo:hi], obs.mean[lo:hi], obs.unit[lo:hi] = (
            z, last_z, mean, unit)
        fraction = a["fraction_seen"][s] | normalizer.fraction(x[lo:hi], v)
        a["fraction_seen"][s] = fraction
        count_sigma = normalizer.COUNT_RESOLUTION * normalizer.count_step(
            mean, v & (count > 0) & ~fraction, cfg.log_transform)
        obs.count_sigma[lo:hi] = count_sigma
        obs.dev[lo:hi] = level_evidence.deviation(yw, v, mean, np.maximum(unit, count_sigma),
                                                  count)
        if cfg.daily_evidence:
            trend, dt = daily.trend(a, s, ts[lo:hi], yw, v, count == 0)
            obs.daily[lo:hi] = daily.deviation(a, s, ts[lo:hi], trend, dt, v)
        seen = a["events_seen"][s]
        first_ts = np.where(seen == 0, ts[lo:hi], a["first_ts"][s])
        a["first_ts"][s] = first_ts
        obs.seen[lo:hi], obs.age[lo:hi] = seen, ts[lo:hi] - first_ts
        if cfg.bidirectional:  # the window the encoder reads: the last K inputs seen
            windows.append([a[name][s, k:] for name in ENCODER_FIELDS])
        if spatial:
            obs.outside[lo:hi] = _outside_range(cfg, a, s, x[lo:hi], v, obs.age[lo:hi],
                                                mask.sum(axis=1), seen)
        if seasons:
            seasonal.learn_step(a, s, buckets[lo:hi], yw, v & (count > 0))
        nm, nv, nc = normalizer.update(yw, v, mean, var, count, cfg.normalizer_halflife)
        a["norm_mean"][s], a["norm_var"][s], a["norm_count"][s] = nm, nv, nc
        a["last_y"][s] = np.where(v, yw, last_y)
        new = [("hist", z), ("hist_valid", valid32[lo:hi]), ("hist_time", tf[lo:hi])]
        if seasons:  # without seasons the arena has no prior columns (the prior is 0)
            new.append(("hist_prior", prior.astype(np.float32)))
        for name, value in new:
            arr = a[name]
            arr[s, :-1] = arr[s, 1:]
            arr[s, -1] = value
        seen = seen + 1
        a["events_seen"][s] = seen
        pos = a["chunk_pos"][s] + 1
        done = pos == k
        a["chunk_pos"][s] = np.where(done, 0, pos)
        obs.done[lo:hi] = done
        # A window completed: training takes it as it stands now, with the state at its
        # start, which the model pass adds.
        if cfg.learn:
            obs.ready += [(lo + int(j), {name: a[name][s[j]].copy() for name in WINDOW_FIELDS})
                          for j in np.flatnonzero(done & (seen >= 2 * k))]
    if windows:
        obs.windows = tuple(np.concatenate(parts) for parts in zip(*windows, strict=True))
    return obs


def _outside_range(cfg: EngineConfig, a: dict[str, np.ndarray], s: np.ndarray, x: np.ndarray,
                   valid: np.ndarray, age: np.ndarray, n_metrics: np.ndarray,
                   seen: np.ndarray) -> np.ndarray:
    """Per event of the wave: the range rule (evidence/range.py) against the stream's ranges
    so far, which then take the event in; `n_metrics`: each stream's number of metrics,
    `seen`: its events before this one."""
    rule = range_rule.RangeRule(cfg.spatial_margin, cfg.spatial_value_margin,
                                cfg.spatial_halflife, cfg.spatial_warmup_s,
                                cfg.spatial_drift_margin, cfg.spatial_drift_warmup_s)
    state = range_rule.RangeState(*(a[name][s] for name in RANGE_FIELDS))
    broke, state = range_rule.observe(rule, state, x, valid, age, a["direction"][s],
                                      n_metrics, seen)
    for name, value in zip(RANGE_FIELDS, state, strict=True):
        a[name][s] = value
    return broke
