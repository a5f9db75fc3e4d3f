"""Batch planning: each event's slot, segment and wave.

Events of one batch are stepped in waves: the i-th event of every stream in the batch forms
wave i, one vectorised step across streams, so a stream's events keep their order. The shared
weights change only at fixed points of the event sequence (a training step, see
`training_cuts`), so a batch is cut into segments at those points, and the results never
depend on how events were cut into batches. The model pass walks each segment's waves
(`Plan.segments`); the stages that do not read the weights walk waves across the whole batch
(`Plan.batch`).

Every stream of the batch has its slot (the engine's admission enrolled the new ones), so a
plan is a few array operations. Planning also fills in each event's values (`result.actual`),
metric names and rejections, and marks the streams it touches as changed.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.engine.arena import StreamArena
from detector.engine.changes import Changes
from detector.engine.types import BatchResult, EngineConfig, Event, Rejection


@dataclass(frozen=True)
class Plan:
    slots: np.ndarray    # per event; -1 = rejected
    segment: np.ndarray
    wave: np.ndarray
    # Whether the last segment ends with a training step (every earlier one does: a step is
    # what cuts a segment).
    ends_with_step: bool = False

    @functools.cached_property
    def accepted(self) -> np.ndarray:
        """The places in the batch of the events not rejected, in order."""
        return np.flatnonzero(self.slots >= 0)

    def segments(self) -> list[Waves]:
        """Each segment's accepted events in its waves, segments in order."""
        accepted = self.accepted
        # Segments never decrease along the batch: each is a run of accepted events.
        runs = np.split(accepted, np.flatnonzero(np.diff(self.segment[accepted])) + 1)
        return [Waves.of(run, self.slots[run], self.wave[run]) for run in runs]

    def batch(self) -> Waves:
        """All accepted events in waves across the whole batch: wave i holds the i-th event
        of every stream."""
        slots = self.slots[self.accepted]
        return Waves.of(self.accepted, slots, _occurrence(slots))


@dataclass(frozen=True)
class Waves:
    """Events grouped in waves, a stream's events in order: `rows` (places in the batch) and
    their `slots`, wave by wave; `bounds` the [lo, hi) of each wave over them."""

    rows: np.ndarray
    slots: np.ndarray
    bounds: list[tuple[int, int]]

    @classmethod
    def of(cls, rows: np.ndarray, slots: np.ndarray, wave: np.ndarray) -> Waves:
        """`rows` in event order with their `slots` and waves."""
        order = np.argsort(wave, kind="stable")
        sizes = np.bincount(wave).tolist()  # every wave up to the last holds an event
        return cls(rows[order], slots[order], list(itertools.pairwise(
            itertools.accumulate(sizes, initial=0))))


@dataclass
class Planner:
    config: EngineConfig
    arena: StreamArena
    changes: Changes

    def plan(self, events: Sequence[Event], seqs: np.ndarray, result: BatchResult,
             pending: int, joins: Sequence[tuple[int, int]] = ()) -> Plan:
        """`seqs`: the events' numbers in the engine's sequence; `pending`: training windows
        waiting; `joins`: (event number, +1 or -1) of each stream enrolled in or evicted from
        the lane since its last batch, in order (the arena already counts them)."""
        cfg, arena = self.config, self.arena
        slots = arena.slots_of([ev.stream for ev in events])
        n, k = len(events), cfg.window
        sets, names_of = arena.metric_sets, arena.metric_names
        for i in [i for i, ev in enumerate(events)
                  if not ev.metrics.keys() <= sets[slots[i]]]:
            result.rejected[i] = self._unknown_metrics(events[i], int(slots[i]))
            slots[i] = -1
        ok = np.flatnonzero(slots >= 0)
        segment = np.zeros(n, dtype=np.int64)
        wave = np.zeros(n, dtype=np.int64)
        if ok.size == 0:
            return Plan(slots, segment, wave)
        s = slots[ok]
        names = [names_of[slot] for slot in s.tolist()]
        width = np.fromiter(map(len, names), dtype=np.int64, count=ok.size)
        flat = np.array([v for i, nm in zip(ok.tolist(), names, strict=True)
                         for v in map(events[i].metrics.get, nm)], dtype=np.float64)
        rows = np.repeat(ok, width)
        cols = np.arange(rows.size) - np.repeat(np.cumsum(width) - width, width)
        result.actual[rows, cols] = flat  # a metric missing from an event (None) is NaN
        for i, nm in zip(ok.tolist(), names, strict=True):
            result.metric_names[i] = nm
        # Newest event of each slot: last_seq and the changed slots.
        last, at = np.unique(s[::-1], return_index=True)
        arena.arrays["last_seq"][last] = seqs[ok[ok.size - 1 - at]]
        self.changes.dirty.update(last.tolist())
        # Windows completed by each event, hence where the training batches cut segments.
        earlier = _occurrence(s)
        done_after = arena.arrays["events_seen"][s] + earlier + 1
        completes = (arena.arrays["chunk_pos"][s] + earlier + 1) % k == 0
        seg = np.zeros(ok.size, dtype=np.int64)
        ends_with_step = False
        if cfg.learn:
            ready = np.flatnonzero(completes & (done_after >= 2 * k))
            population = _population(len(arena), joins, seqs[ok[ready]])
            cut = ready[training_cuts(population, pending, cfg.train_batch, k)]
            # An event after the j-th cut is in segment j.
            seg = np.searchsorted(cut, np.arange(ok.size), side="left")
            ends_with_step = bool(cut.size) and cut[-1] == ok.size - 1
        segment[ok] = seg
        wave[ok] = _occurrence(s, seg)
        return Plan(slots, segment, wave, ends_with_step)

    def _unknown_metrics(self, ev: Event, slot: int) -> Rejection:
        """Why an event naming metrics its stream does not have is rejected."""
        extra = sorted(set(ev.metrics) - self.arena.metric_sets[slot])
        return Rejection("metrics", f"stream {ev.stream!r}: unknown metrics {extra}; its "
                                    f"metrics are {list(self.arena.metric_names[slot])}")


def step_size(population: np.ndarray | int, train_batch: int, window: int) -> np.ndarray:
    """Windows a training step waits for in a lane of `population` streams: `train_batch`, or
    the windows one round of its streams completes (one event each: population / window) when
    that is more. A step costs about the same for 16 windows as for 64 (it is mostly call
    overhead), so a crowded lane takes fewer, larger steps: training costs at most one step
    per round, and each stream still sees the model step at least as often, per event of its
    own, as a stream alone in its lane does."""
    return np.maximum(train_batch, -(-np.asarray(population) // window))


def training_cuts(population: np.ndarray, pending: int, train_batch: int, window: int
                  ) -> np.ndarray:
    """Which of a batch's completed training windows (in order; `population`: the lane's
    streams at each) end a step: the first at which the windows waiting, `pending` before the
    batch, reach `step_size`. Counted at each window, so the cuts never depend on batching."""
    need = step_size(population, train_batch, window)
    cuts: list[int] = []
    start, waiting = 0, pending
    while start < need.size:
        after = waiting + np.arange(1, need.size - start + 1)  # waiting after each window
        hit = np.flatnonzero(after >= need[start:])
        if not hit.size:
            break
        cuts.append(start + int(hit[0]))
        start, waiting = cuts[-1] + 1, 0
    return np.array(cuts, dtype=np.int64)


def _population(now: int, joins: Sequence[tuple[int, int]], seqs: np.ndarray) -> np.ndarray:
    """The lane's streams at each of `seqs` (event numbers of this batch): `now` counts every
    join; a stream enrolled or evicted at an event counts from that event on."""
    if not joins:
        return np.full(seqs.size, now, dtype=np.int64)
    at = np.array([seq for seq, _ in joins], dtype=np.int64)
    delta = np.array([d for _, d in joins], dtype=np.int64)
    counted = np.concatenate(([0], np.cumsum(delta)))
    return now - counted[-1] + counted[np.searchsorted(at, seqs, side="right")]


def _occurrence(slots: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Per element, how many earlier elements (of the same group) hold the same slot."""
    keys = slots if groups is None else groups * (int(slots.max()) + 1) + slots
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    run_start = np.repeat(starts, np.diff(np.append(starts, keys.size)))
    out = np.empty(keys.size, dtype=np.int64)
    out[order] = np.arange(keys.size) - run_start
    return out
