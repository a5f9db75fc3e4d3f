"""Per-stream state in preallocated arrays indexed by stream slot, and the id ↔ slot map.

Every per-stream quantity (LSTM state, recent window, normaliser and calibration statistics,
alert refractory state) is a row of one array, so a batch of streams is stepped with a handful of
vectorised operations. The arena doubles its capacity when full, up to `max_streams`; a
removed stream's slot is reused. Rows can be read and written whole (`row`, `put`), which is
what checkpoints and restores do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.engine import daily_habit
from detector.engine.calibration_tail import N_LEVEL_BINS
from detector.engine.evidence import daily

N_TIME_FEATURES = 4


@dataclass(frozen=True)
class ArenaShape:
    hidden: int
    window: int
    max_metrics: int
    seasonal_buckets: int = 0
    daily: bool = False  # the daily evidence's fields (evidence/daily.py) exist only with it


# name -> (trailing shape builder, dtype). One table so growth and codecs cannot miss a field.
def _field_specs(shape: ArenaShape) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    h, k, d = shape.hidden, shape.window, shape.max_metrics
    seasons = d if shape.seasonal_buckets > 0 else 0  # off, the prior is 0: no columns
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    specs = {
        "h": ((h,), f32), "c": ((h,), f32),            # carried LSTM state
        "h0": ((h,), f32), "c0": ((h,), f32),          # state at the start of the open chunk
        "hist": ((2 * k, d), f32),                     # last 2K normalised inputs, newest last
        "hist_valid": ((2 * k, d), f32),               # 1 where that input was present
        "hist_time": ((2 * k, N_TIME_FEATURES), f32),  # their time-of-day/week features
        "hist_prior": ((2 * k, seasons), f32),         # seasonal step expected at each input
        "metric_mask": ((d,), f32),                    # 1 for the stream's metric columns
        "norm_mean": ((d,), f64), "norm_var": ((d,), f64), "norm_count": ((d,), f32),
        "fraction_seen": ((d,), np.dtype(bool)),     # a value that is no whole number: no count
        "last_y": ((d,), f64),                         # newest compressed value seen
        "seen_min": ((d,), f64), "seen_max": ((d,), f64),  # range of the raw values so far
        "smooth": ((d,), f64),                         # running mean of the raw values
        # Its range as of the last settling and since, whether out on a drift (evidence/range.py).
        "smooth_min": ((d,), f64), "smooth_max": ((d,), f64),
        "smooth_recent_min": ((d,), f64), "smooth_recent_max": ((d,), f64),
        "smooth_drifting": ((d,), np.dtype(bool)),
        "range_broke_at": ((), f64),  # the stream's age at its last range break (NaN: none)
        "res_var": ((d,), f64), "res_count": ((), f64),  # forecast residual statistics
        # Decayed counts of past surprise levels, per evidence (calibration_tail).
        "surprise_hist": ((N_LEVEL_BINS,), f32), "level_hist": ((N_LEVEL_BINS,), f32),
        "relation_hist": ((N_LEVEL_BINS,), f32),
        "tail_age": ((), f64),                         # first_ts-relative time they last
                                                       # took an event in (their decay)
        # The last two days with a surprise in each hour of the day, and each evidence's
        # highest bin on them (daily_habit).
        "recur_day": ((daily_habit.HOURS, 2), np.dtype(np.uint16)),
        "recur_bin": ((daily_habit.HOURS, 2, daily_habit.EVIDENCES), np.dtype(np.uint8)),
        "relation": ((d, d), f32),                     # running second moment of z-scores
        "direction": ((d,), np.dtype(np.int8)),        # per metric: 0 both, 1 up, -1 down
        "ranking_memory": ((d,), f32),                 # recent evidence per metric (ranking)
        "first_ts": ((), f64),                         # time of the stream's first event
        "threshold": ((), f64),
        # Mean step (newest minus previous compressed value) by time of day, and its count.
        "season": ((max(shape.seasonal_buckets, 1), d), f32),
        "season_n": ((max(shape.seasonal_buckets, 1),), f32),
        "peak": ((), f64), "peak_age": ((), np.dtype(np.int32)),  # refractory state
        "events_seen": ((), np.dtype(np.int64)),
        "chunk_pos": ((), np.dtype(np.int32)),  # below the window
        "last_seq": ((), np.dtype(np.int64)),  # engine event number of the newest event
    }
    # Only when on: off, the layout (and a checkpoint's fingerprint) stays the one before it.
    if shape.daily:
        hours = daily.BUCKETS
        specs.update({
            # Fast and slow means and their time; the trend by hour of the day (mean,
            # variance, events, days seen, the last of them); the tail of its levels.
            "trend_fast": ((d,), f32), "trend_slow": ((d,), f32), "trend_ts": ((1,), f64),
            "daily_mean": ((hours, d), f32), "daily_var": ((hours, d), f32),
            "daily_count": ((hours,), f32), "daily_days": ((hours,), f32),
            "daily_last": ((hours,), f32), "daily_hist": ((N_LEVEL_BINS,), f32),
            "daily_recent": ((d,), f32),  # recent mean square deviation per metric
        })
    return specs


def row_bytes(shape: ArenaShape) -> int:
    """One stream's row of every array of an arena of this shape."""
    return sum(int(np.prod(trailing, dtype=np.int64)) * dtype.itemsize
               for trailing, dtype in _field_specs(shape).values())


class StreamArena:
    """Stream id ↔ slot, and every per-stream array."""

    def __init__(self, shape: ArenaShape, *, capacity: int, max_streams: int) -> None:
        self.shape = shape
        self.max_streams = max_streams
        self.capacity = 0
        self._slot_of: dict[str, int] = {}
        # Per slot: its stream id (None = free), metric names and their set.
        self.stream_ids: list[str | None] = []
        self.metric_names: list[tuple[str, ...]] = []
        self.metric_sets: list[frozenset[str]] = []
        self._free: list[int] = []
        self.specs = _field_specs(shape)
        self.arrays: dict[str, np.ndarray] = {}
        self._grow(min(capacity, max_streams))

    def __len__(self) -> int:
        return len(self._slot_of)

    def slot(self, stream: str) -> int | None:
        return self._slot_of.get(stream)

    def slots_of(self, streams: list[str]) -> np.ndarray:
        """Slot of each stream, -1 for a stream without one."""
        get = self._slot_of.get
        return np.fromiter((get(s, -1) for s in streams), dtype=np.int64, count=len(streams))

    def live_slots(self) -> np.ndarray:
        return np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self._slot_of))

    def add(self, stream: str, metric_names: tuple[str, ...], threshold: float) -> int:
        """Claim a slot for a new stream, in its initial state; admission has made room."""
        slot = self._claim(stream, metric_names)
        self.arrays["metric_mask"][slot, : len(metric_names)] = 1.0
        self.arrays["threshold"][slot] = threshold
        self.arrays["seen_min"][slot] = np.nan  # no value seen yet
        self.arrays["seen_max"][slot] = np.nan
        self.arrays["range_broke_at"][slot] = np.nan
        return slot

    def put(self, stream: str, metric_names: tuple[str, ...], row: dict[str, np.ndarray]
            ) -> int:
        """Claim a slot for a stream restored from a checkpoint, with every field given."""
        slot = self._claim(stream, metric_names)
        for name, arr in self.arrays.items():
            arr[slot] = row[name]
        return slot

    def row(self, slot: int) -> dict[str, np.ndarray]:
        """Copies of every field of one slot."""
        return {name: arr[slot].copy() for name, arr in self.arrays.items()}

    def remove(self, stream: str) -> int:
        """Free a stream's slot for reuse; returns the slot."""
        slot = self._slot_of.pop(stream)
        self.stream_ids[slot] = None
        self._free.append(slot)
        return slot

    def _claim(self, stream: str, metric_names: tuple[str, ...]) -> int:
        if self._free:
            slot = self._free.pop()
            for arr in self.arrays.values():
                arr[slot] = 0
            self.stream_ids[slot] = stream
            self.metric_names[slot] = metric_names
            self.metric_sets[slot] = frozenset(metric_names)
        else:
            slot = len(self.stream_ids)
            if slot >= self.capacity:
                self._grow(min(self.capacity * 2, self.max_streams))
            self.stream_ids.append(stream)
            self.metric_names.append(metric_names)
            self.metric_sets.append(frozenset(metric_names))
        self._slot_of[stream] = slot
        return slot

    def state_bytes_per_stream(self) -> int:
        return row_bytes(self.shape)

    def _grow(self, capacity: int) -> None:
        new = {}
        for name, (trailing, dtype) in self.specs.items():
            arr = np.zeros((capacity, *trailing), dtype=dtype)
            if name in self.arrays:
                arr[: self.capacity] = self.arrays[name][: self.capacity]
            new[name] = arr
        self.arrays = new
        self.capacity = capacity
