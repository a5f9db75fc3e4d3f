"""Batch planning: the array operations plan exactly what walking the events one by one
plans."""

from __future__ import annotations

import copy
import math
import random

import numpy as np

from detector.engine import BatchResult, Engine, EngineConfig, Event
from detector.engine.lane import Lane
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


def walked_plan(lane: Lane, batch: list[Event], pending: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slots, segments, waves) by the definition, one event at a time."""
    cfg, arrays = lane.config, lane.arena.arrays
    n = len(batch)
    slots, segment, wave = (np.full(n, -1), np.zeros(n, np.int64), np.zeros(n, np.int64))
    chunk: dict[int, int] = {}
    seen: dict[int, int] = {}
    next_wave: dict[int, tuple[int, int]] = {}  # slot -> (segment, next wave in it)
    current = 0
    for i, ev in enumerate(batch):
        slot = lane.arena.slot(ev.stream)
        assert slot is not None
        if not ev.metrics.keys() <= lane.arena.metric_sets[slot]:
            continue
        chunk.setdefault(slot, int(arrays["chunk_pos"][slot]))
        seen.setdefault(slot, int(arrays["events_seen"][slot]))
        seg, w = next_wave.get(slot, (current, 0))
        if seg != current:
            w = 0
        slots[i], segment[i], wave[i] = slot, current, w
        next_wave[slot] = (current, w + 1)
        seen[slot] += 1
        chunk[slot] = (chunk[slot] + 1) % cfg.window
        if chunk[slot] == 0 and cfg.learn and seen[slot] >= 2 * cfg.window:
            pending += 1
            if pending >= cfg.train_batch:
                pending, current = 0, current + 1
    return slots, segment, wave


def test_the_plan_is_what_walking_the_events_gives() -> None:
    rng = random.Random(3)
    events = traffic(n_streams=6, n_steps=60)
    engine = Engine(CONFIG)
    engine.process(events[:60])  # every stream admitted, some windows pending
    (lane,) = engine.lanes.values()
    position = 60
    while position < len(events):
        size = rng.randint(1, 90)
        batch = roughen(events[position:position + size], rng)
        twin = copy.deepcopy(lane)
        twin.changes.dirty.clear()
        result = BatchResult.empty(len(batch), lane.width)
        seqs = np.arange(engine.events_processed, engine.events_processed + len(batch))
        planned = twin.planner.plan(batch, seqs, result, len(twin.trainer.pending))
        walked = walked_plan(lane, batch, len(lane.trainer.pending))
        for name, want in zip(("slots", "segment", "wave"), walked, strict=True):
            np.testing.assert_array_equal(getattr(planned, name), want, err_msg=name)
        for i, ev in enumerate(batch):
            if walked[0][i] >= 0:
                names = lane.arena.metric_names[walked[0][i]]
                assert result.metric_names[i] == names and result.rejected[i] is None
                np.testing.assert_array_equal(
                    result.actual[i, :len(names)],
                    [ev.metrics.get(m, math.nan) for m in names])
            else:
                assert "unknown metrics" in str(result.rejected[i])
        last = {walked[0][i]: seqs[i] for i in range(len(batch)) if walked[0][i] >= 0}
        assert twin.changes.dirty == set(last)
        for slot, seq in last.items():
            assert twin.arena.arrays["last_seq"][slot] == seq
        engine.process(batch)
        position += size
    assert engine.train_steps > 3
