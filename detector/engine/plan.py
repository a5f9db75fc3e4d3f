"""Batch planning: each event's slot, segment and wave.

Events of one batch are stepped in waves: the i-th event of every stream in the batch forms
wave i, one vectorised step across streams, so a stream's events keep their order. The shared
weights change only at fixed points of the event sequence (every `train_batch` completed
windows), so a batch is cut into segments at those points, and the results never depend on how
events were cut into batches.

A batch whose streams all have slots is planned in array operations (`plan_known`); one with a
new stream is walked event by event (`plan_admitting`), since admission (and so eviction)
depends on the order of events. Both give the same plan. A plan may stop short (`cut`) where
admission must evict a stream the batch has already used: the engine steps what was planned
and plans the rest afresh. Planning also fills in each event's
values (`result.actual`), metric names and rejections, and marks the streams it touches as
changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.engine.admission import CUT, Admission
from detector.engine.arena import StreamArena
from detector.engine.changes import Changes
from detector.engine.types import BatchResult, EngineConfig, Event, Rejection


@dataclass(frozen=True)
class Plan:
    slots: np.ndarray    # per event; -1 = rejected
    segment: np.ndarray
    wave: np.ndarray
    cut: int | None = None  # plan only the events before this one, then plan again from it


@dataclass
class _Cursor:
    """Where a stream stands while a batch is planned event by event."""

    chunk_pos: int   # events into its current window
    seen: int        # events seen
    next_wave: int   # wave of its next event within `segment`
    segment: int


@dataclass
class Planner:
    config: EngineConfig
    arena: StreamArena
    changes: Changes
    admission: Admission

    def plan(self, events: Sequence[Event], result: BatchResult, seq0: int,
             pending: int) -> Plan:
        """`seq0`: the number of the batch's first event; `pending`: training windows
        waiting."""
        known = self.arena.slots_of([ev.stream for ev in events])
        if known.size and known.min() >= 0:
            return self._plan_known(events, known, result, seq0, pending)
        return self._plan_admitting(events, result, seq0, pending)

    def _plan_known(self, events: Sequence[Event], slots: np.ndarray, result: BatchResult,
                    seq0: int, pending: int) -> Plan:
        cfg, arena = self.config, self.arena
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
        arena.arrays["last_seq"][last] = seq0 + ok[ok.size - 1 - at]
        self.changes.dirty.update(last.tolist())
        # Windows completed by each event, hence where the training batches cut segments.
        occurrence = _occurrence(s)
        done_after = arena.arrays["events_seen"][s] + occurrence + 1
        completes = (arena.arrays["chunk_pos"][s] + occurrence + 1) % k == 0
        if cfg.learn:
            ready = np.cumsum(completes & (done_after >= 2 * k))
            before = np.concatenate(([0], ready[:-1]))
            seg = (pending + before) // cfg.train_batch
        else:
            seg = np.zeros(ok.size, dtype=np.int64)
        segment[ok] = seg
        wave[ok] = _occurrence(s, seg)
        return Plan(slots, segment, wave)

    def _plan_admitting(self, events: Sequence[Event], result: BatchResult, seq0: int,
                        pending: int) -> Plan:
        cfg, arena = self.config, self.arena
        n, k = len(events), cfg.window
        slots = np.full(n, -1, dtype=np.int64)
        segment = np.zeros(n, dtype=np.int64)
        wave = np.zeros(n, dtype=np.int64)
        chunk_pos, seen = arena.arrays["chunk_pos"], arena.arrays["events_seen"]
        last_seq = arena.arrays["last_seq"]
        cursors: dict[int, _Cursor] = {}
        current = 0
        actual = result.actual
        for i, ev in enumerate(events):
            slot = arena.slot(ev.stream)
            if slot is None:
                admitted = self.admission.admit(ev, seq0 + i, seq0)
                if isinstance(admitted, Rejection):
                    result.rejected[i] = admitted
                    continue
                if admitted == CUT:
                    return Plan(slots[:i], segment[:i], wave[:i], cut=i)
                slot = admitted
                # Admission may have grown (reallocated) the arena.
                chunk_pos, seen = arena.arrays["chunk_pos"], arena.arrays["events_seen"]
                last_seq = arena.arrays["last_seq"]
            elif not ev.metrics.keys() <= arena.metric_sets[slot]:
                result.rejected[i] = self._unknown_metrics(ev, slot)
                continue
            last_seq[slot] = seq0 + i
            self.changes.dirty.add(slot)
            names = arena.metric_names[slot]
            for j, name in enumerate(names):
                actual[i, j] = ev.metrics.get(name, math.nan)
            result.metric_names[i] = names
            cur = cursors.get(slot)
            if cur is None:
                cur = cursors[slot] = _Cursor(int(chunk_pos[slot]), int(seen[slot]), 0, current)
            if cur.segment != current:
                cur.next_wave, cur.segment = 0, current
            slots[i], segment[i], wave[i] = slot, current, cur.next_wave
            cur.next_wave += 1
            cur.seen += 1
            cur.chunk_pos += 1
            if cur.chunk_pos == k:
                cur.chunk_pos = 0
                if cfg.learn and cur.seen >= 2 * k:
                    pending += 1
                    if pending >= cfg.train_batch:
                        pending, current = 0, current + 1
        return Plan(slots, segment, wave)

    def _unknown_metrics(self, ev: Event, slot: int) -> Rejection:
        """Why an event naming metrics its stream does not have is rejected."""
        extra = sorted(set(ev.metrics) - self.arena.metric_sets[slot])
        return Rejection("metrics", f"stream {ev.stream!r}: unknown metrics {extra}; its "
                                    f"metrics are {list(self.arena.metric_names[slot])}")


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
