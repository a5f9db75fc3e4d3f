"""Admission of new streams: a token bucket, and eviction of the stream seen least recently.

The bucket holds up to `admission_burst` tokens (default: the stream limit) and refills at
`admission_rate` per event, not per second, so a replay admits exactly what the daemon
admitted. At the stream limit, a new stream takes the slot of the stream seen least recently.
When that stream has an event earlier in the batch being planned, its slot is still in use by
the plan: admission answers CUT, and the engine steps the batch up to this event before it
plans the rest, so what is evicted never depends on how events were batched.
"""

from __future__ import annotations

import math

import numpy as np

from detector.engine import direction
from detector.engine.arena import StreamArena
from detector.engine.changes import Changes
from detector.engine.post_rules import threshold_for
from detector.engine.types import EngineConfig, Event, Rejection

CUT = -1  # admission needs the batch stepped up to this event first (see the docstring)


class Admission:
    def __init__(self, config: EngineConfig, arena: StreamArena, changes: Changes) -> None:
        self.config, self.arena, self.changes = config, arena, changes
        self.burst = config.admission_burst or config.max_streams
        self.tokens = float(self.burst)
        self.tokens_at = 0  # engine event number of the last refill

    def admit(self, ev: Event, seq: int, batch_start: int) -> int | Rejection:
        """The slot of a new stream, why its event is rejected, or CUT. `seq`: the event's
        number, `batch_start`: the number of the first event of the batch being planned."""
        cfg, arena = self.config, self.arena
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
        if arena.is_full and not self._evict_least_recent(batch_start):
            return CUT  # the refill above is repeated at no cost: seq - tokens_at is 0 then
        self.tokens -= 1.0
        thr = threshold_for(ev.stream, cfg.threshold, cfg.threshold_overrides)
        slot = arena.add(ev.stream, names, thr)
        arena.arrays["direction"][slot, :len(names)] = direction.for_stream(
            ev.stream, names, cfg.directions)
        # Streams admitted together (a fleet at start-up, every stream reporting at one
        # cadence) would complete their windows on the same events forever, and a whole
        # fleet's training steps would fall into one batch: a latency spike every `window`
        # steps. Each stream's windows start at its admission's place in the event sequence.
        arena.arrays["chunk_pos"][slot] = seq % cfg.window
        return slot

    def _evict_least_recent(self, batch_start: int) -> bool:
        """Free the slot of the stream seen least recently, unless it is in this batch."""
        arena = self.arena
        live = arena.live_slots()
        slot = int(live[np.argmin(arena.arrays["last_seq"][live])])
        if arena.arrays["last_seq"][slot] >= batch_start:
            return False
        stream = arena.stream_ids[slot]
        assert stream is not None
        arena.remove(stream)
        self.changes.dirty.discard(slot)
        self.changes.evicted.append(stream)
        return True
