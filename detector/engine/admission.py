"""Admission of new streams: which lane, a token bucket, and room made by evicting the stream
seen least recently.

A new stream goes to the narrowest lane (width class) that holds its metrics (`lane_widths`).
The bucket holds up to `admission_burst` tokens (default: the stream limit) and refills at
`admission_rate` per event, not per second, so a replay admits exactly what the daemon
admitted. Room is counted two ways: at most `max_streams` streams, and at most the bytes of
`max_streams` rows of REFERENCE_WIDTH metrics, so a 64-metric host takes the room of the
several narrow streams its state would hold, and the memory check (daemon/memory_budget.py)
holds whatever the widths. Without room, a new stream takes the place of the stream seen least
recently, in any lane. When that stream has an event earlier in the batch being admitted, its
slot is still in use: admission answers CUT, and the engine steps the batch up to this event
before it admits the rest, so what is evicted never depends on how events were batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from detector.engine.arena import ArenaShape, row_bytes
from detector.engine.types import EngineConfig, Event, Rejection

if TYPE_CHECKING:
    from detector.engine.lane import Lane

CUT = -1  # admission needs the batch stepped up to this event first (see the docstring)
WIDTH_CLASSES = (4, 8, 16, 32, 64)
REFERENCE_WIDTH = 4  # DETECTOR_STATE_MAX_STREAMS counts rows of this many metrics


def lane_widths(max_metrics: int) -> tuple[int, ...]:
    """The lanes of an engine whose streams carry up to `max_metrics` metrics."""
    return tuple(w for w in WIDTH_CLASSES if w < max_metrics) + (max_metrics,)


def narrowest_lane(widths: tuple[int, ...], n_metrics: int) -> int:
    """The lane of a stream of `n_metrics` metrics: the narrowest that holds them (the widest
    for more than any holds; admission refuses those first)."""
    return next((w for w in widths if w >= n_metrics), widths[-1])


def shape_of(config: EngineConfig, width: int) -> ArenaShape:
    """The arena shape of a lane of `width` metrics under `config`."""
    return ArenaShape(config.hidden_size, config.window, width, config.seasonal_buckets,
                      config.daily_evidence)


def reference_row_bytes(config: EngineConfig) -> int:
    """The row DETECTOR_STATE_MAX_STREAMS counts: a stream of REFERENCE_WIDTH metrics (fewer
    when max_metrics is lower). The memory check (daemon/memory_budget.py) counts the same."""
    return row_bytes(shape_of(config, min(REFERENCE_WIDTH, config.max_metrics)))


class Admission:
    def __init__(self, config: EngineConfig, widths: tuple[int, ...],
                 lanes: Callable[[], Iterable[Lane]],
                 evict: Callable[[Lane, str, int], None]) -> None:
        """`lanes`: the engine's lanes; `evict`: how the engine forgets a stream to make
        room for the new stream of an event (its number)."""
        self.config, self.widths, self._lanes, self._evict = config, widths, lanes, evict
        self.burst = config.admission_burst or config.max_streams
        self.tokens = float(self.burst)
        self.tokens_at = 0  # engine event number of the last refill
        self.row_bytes = {w: row_bytes(shape_of(config, w)) for w in widths}
        self.budget_bytes = config.max_streams * reference_row_bytes(config)

    def width_for(self, n_metrics: int) -> int:
        """The lane of a stream of `n_metrics` metrics (at most max_metrics)."""
        return narrowest_lane(self.widths, n_metrics)

    def lane_capacity(self, width: int) -> int:
        """The most streams a lane can ever hold."""
        return max(1, min(self.config.max_streams, self.budget_bytes // self.row_bytes[width]))

    def admit(self, ev: Event, seq: int, batch_start: int) -> int | Rejection:
        """The width of the lane a new stream enters, why its event is rejected, or CUT.
        `seq`: the event's number, `batch_start`: the number of the first event of the batch
        being admitted."""
        cfg = self.config
        names = tuple(ev.metrics)
        if not names:
            return Rejection("metrics", f"stream {ev.stream!r}: event has no metrics")
        if len(names) > cfg.max_metrics:
            return Rejection("metrics", f"stream {ev.stream!r}: {len(names)} metrics, more "
                                        f"than DETECTOR_MODEL_MAX_METRICS={cfg.max_metrics}")
        if any(math.isnan(v) for v in ev.metrics.values()):
            return Rejection("metrics", f"stream {ev.stream!r}: the first event of a stream "
                                        "must carry every metric")
        self.tokens = min(float(self.burst),
                          self.tokens + cfg.admission_rate * (seq - self.tokens_at))
        self.tokens_at = seq
        if self.tokens < 1.0:
            return Rejection("admission", f"stream {ev.stream!r}: new-stream admission limit "
                                          f"reached (DETECTOR_STATE_ADMISSION_RATE="
                                          f"{cfg.admission_rate} per event after a burst of "
                                          f"{self.burst})")
        width = self.width_for(len(names))
        if self.row_bytes[width] > self.budget_bytes:
            return Rejection("admission", f"stream {ev.stream!r}: its {len(names)} metrics "
                                          f"need {self.row_bytes[width]:,} bytes of state, "
                                          "more than DETECTOR_STATE_MAX_STREAMS allows in all")
        while not self._room_for(width):
            if not self._evict_least_recent(seq, batch_start):
                return CUT  # the refill above is repeated at no cost: seq - tokens_at is 0
        self.tokens -= 1.0
        return width

    def _room_for(self, width: int) -> bool:
        lanes = list(self._lanes())
        count = sum(len(lane.arena) for lane in lanes)
        used = sum(len(lane.arena) * self.row_bytes[lane.width] for lane in lanes)
        return (count < self.config.max_streams
                and used + self.row_bytes[width] <= self.budget_bytes)

    def _evict_least_recent(self, seq: int, batch_start: int) -> bool:
        """Evict the stream seen least recently in any lane, unless it is in this batch, for
        the new stream of event `seq`."""
        best: tuple[int, Lane, int] | None = None
        for lane in self._lanes():
            if not len(lane.arena):
                continue
            live = lane.arena.live_slots()
            last_seq = lane.arena.arrays["last_seq"]
            slot = int(live[np.argmin(last_seq[live])])
            if best is None or last_seq[slot] < best[0]:
                best = (int(last_seq[slot]), lane, slot)
        if best is None or best[0] >= batch_start:
            return False
        _, lane, slot = best
        stream = lane.arena.stream_ids[slot]
        assert stream is not None
        self._evict(lane, stream, seq)
        return True
