"""Batch planning: the array path for batches of known streams plans exactly what the
event-by-event path plans."""

from __future__ import annotations

import copy
import math
import random

import numpy as np

from detector.engine import BatchResult, Engine, EngineConfig, Event
from tests.unit.factories import traffic

CONFIG = EngineConfig(hidden_size=8, window=4, train_batch=3, warmup_events=8)


def roughen(events: list[Event], rng: random.Random) -> list[Event]:
    """Shuffle within the batch's steps, drop a metric here, add an unknown one there."""
    out = []
    for ev in events:
        metrics = dict(ev.metrics)
        roll = rng.random()
        if roll < 0.1:
            metrics.pop(rng.choice(list(metrics)))
        elif roll < 0.15:
            metrics["surprise"] = 1.0
        elif roll < 0.2:
            metrics = dict(reversed(list(metrics.items())))
        elif roll < 0.25:
            metrics[next(iter(metrics))] = math.nan
        out.append(Event(ev.stream, ev.ts, metrics))
    return out


def test_plan_of_known_streams_matches_the_event_by_event_plan() -> None:
    rng = random.Random(3)
    events = traffic(n_streams=6, n_steps=60)
    engine = Engine(CONFIG)
    engine.process(events[:60])  # every stream admitted, some windows pending
    position = 60
    while position < len(events):
        size = rng.randint(1, 90)
        batch = roughen(events[position:position + size], rng)
        twin = copy.deepcopy(engine)
        n, d = len(batch), CONFIG.max_metrics
        fast, slow = BatchResult.empty(n, d), BatchResult.empty(n, d)
        known = engine.arena.slots_of([ev.stream for ev in batch])
        seq0, pending = engine.events_processed, len(engine.trainer.pending)
        planned = engine.planner._plan_known(batch, known, fast, seq0, pending)
        expected = twin.planner._plan_admitting(batch, slow, seq0, pending)
        for name in ("slots", "segment", "wave"):
            np.testing.assert_array_equal(getattr(planned, name), getattr(expected, name))
        np.testing.assert_array_equal(fast.actual, slow.actual)
        assert fast.rejected == slow.rejected
        assert fast.metric_names == slow.metric_names
        assert engine.changes.dirty == twin.changes.dirty
        np.testing.assert_array_equal(engine.arena.arrays["last_seq"],
                                      twin.arena.arrays["last_seq"])
        engine.process(batch)
        position += size
    assert engine.train_steps > 3
