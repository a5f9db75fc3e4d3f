"""Batch planning: the array operations plan exactly what walking the events one by one
plans."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import numpy as np
import pytest

from detector.engine import BatchResult, Engine, EngineConfig, Event
from detector.engine.lane import Lane
from detector.engine.plan import step_size, training_cuts
from tests.unit.factories import traffic

CONFIG = EngineConfig(hidden_size=8, window=4, train_batch=3, warmup_events=8)
# 6 streams in a lane whose steps would take 1 window: a step waits for a round's 2.
CROWDED = dataclasses.replace(CONFIG, train_batch=1)


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
    """(slots, segments, waves) by the definition, one event at a time (the lane's streams
    do not change within the batch)."""
    cfg, arrays = lane.config, lane.arena.arrays
    n = len(batch)
    slots, segment, wave = (np.full(n, -1), np.zeros(n, np.int64), np.zeros(n, np.int64))
    chunk: dict[int, int] = {}
    seen: dict[int, int] = {}
    next_wave: dict[int, tuple[int, int]] = {}  # slot -> (segment, next wave in it)
    current = 0
    need = max(cfg.train_batch, math.ceil(len(lane.arena) / cfg.window))
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
            if pending >= need:
                pending, current = 0, current + 1
    return slots, segment, wave


@pytest.mark.parametrize("config", [CONFIG, CROWDED], ids=["train_batch", "crowded"])
def test_the_plan_is_what_walking_the_events_gives(config: EngineConfig) -> None:
    rng = random.Random(3)
    events = traffic(n_streams=6, n_steps=60)
    engine = Engine(config)
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


def test_a_step_waits_for_train_batch_or_a_round_of_the_lanes_streams() -> None:
    assert step_size(1, 16, 8) == 16
    assert step_size(128, 16, 8) == 16
    assert step_size(129, 16, 8) == 17  # a round of 129 streams completes 16.1 windows
    assert step_size(10_000, 16, 8) == 1_250
    np.testing.assert_array_equal(step_size(np.array([3, 40, 41]), 1, 4), [1, 10, 11])


def test_training_cuts_are_where_walking_the_windows_steps() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        population = rng.integers(1, 60, size=rng.integers(0, 40))
        pending = int(rng.integers(0, 5))
        cuts, waiting = [], pending
        for j, streams in enumerate(population):
            waiting += 1
            if waiting >= max(3, math.ceil(streams / 4)):
                cuts.append(j)
                waiting = 0
        np.testing.assert_array_equal(training_cuts(population, pending, 3, 4), cuts)


def test_a_crowded_lane_steps_about_once_per_round_of_its_streams() -> None:
    config = dataclasses.replace(CONFIG, train_batch=1, warmup_events=4)
    crowd = Engine(config)
    crowd.process(traffic(n_streams=40, n_steps=41))
    # Each of 40 streams completes 9 or 10 windows of 4 in 41 events, the first not trained
    # on; a step takes the 10 windows of a round of 40 streams.
    (lane,) = crowd.lanes.values()
    waiting = len(lane.trainer.pending)
    assert waiting < 10 and 320 <= 10 * crowd.train_steps + waiting <= 360
    alone = Engine(config)
    alone.process(traffic(n_streams=1, n_steps=41))
    assert alone.train_steps == 9  # one window a step
