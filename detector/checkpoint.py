"""Checkpoints: the numbered steps that keep alerts, state and input offsets in agreement.

1. Snapshot, at input position T of each partition that moved: the alert and dead-letter sends
   so far, the state of every stream that changed (and the streams evicted), the model.
2. Write the snapshot to the changelog, each record tagged with the input offset T it reflects.
3. Wait until the broker acknowledged every record of steps 1 and 2.
4. Commit the input offsets T.

A crash anywhere before step 4 leaves the previous commit in force: the input is processed again
from there, on the state restored as of that commit (records of step 2 are tagged past it and
ignored), and produces the same alerts with the same ids.

In the daemon's loop a checkpoint is pipelined: `start` takes the snapshot (array copies), and
each later turn of the loop `advance`s it by the records `due` on a schedule that spreads them
over `spread_s`, then commits once everything is acknowledged. Scoring never stalls for a whole
checkpoint, and the broker takes the state as a steady trickle rather than a burst that would
delay the input fetches. `commit` runs all steps at once (shutdown, tests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import structlog
from kafka import TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from detector.engine import Engine
from detector.errors import DeliveryError
from detector.io.changelog import ENGINE_KEY, send_state, stream_key
from detector.state.codec import encode_rows, encode_shared

log = structlog.get_logger("detector.checkpoint")

ENCODE_CHUNK = 1_000  # stream records encoded at a time


@dataclass
class PartitionWork:
    """An assigned input partition: its engine and how far it got."""

    engine: Engine
    position: int           # next input offset to process
    committed: int          # input offset of the last successful commit

    @property
    def moved(self) -> bool:
        """Scored past its last commit: the next checkpoint has something to write."""
        return self.position > self.committed


# (changelog partition, source offset, key, value or None for a tombstone)
StateRecord = tuple[int, int, bytes, bytes | None]


@dataclass
class _InFlight:
    offsets: dict[TopicPartition, int]
    works: dict[TopicPartition, PartitionWork]
    records: Iterator[StateRecord]
    total: int              # records of the snapshot
    futures: list[Any]
    started: float
    written: int = 0


@dataclass
class Checkpoint:
    producer: Any
    consumer: Any
    changelog_topic: str
    write_state: bool
    timeout_s: float
    spread_s: float = 0.0   # the schedule of `due`; 0: everything at once
    _sent: list[Any] = field(default_factory=list)
    _flight: _InFlight | None = None

    def track(self, futures: list[Any]) -> None:
        """Alert and dead-letter sends that must be acknowledged before the next commit."""
        self._sent.extend(futures)

    @property
    def in_flight(self) -> bool:
        return self._flight is not None

    def start(self, parts: dict[TopicPartition, PartitionWork]) -> None:
        """Step 1 for the partitions that moved since their last commit."""
        if self._flight is not None:
            raise RuntimeError("a checkpoint is already in flight")
        moved = {tp: w for tp, w in parts.items() if w.moved}
        futures, self._sent = self._sent, []
        snapshots = [self._snapshot(tp.partition, w) for tp, w in moved.items()]
        self._flight = _InFlight({tp: w.position for tp, w in moved.items()}, moved,
                                 (r for _, snap in snapshots for r in snap),
                                 sum(n for n, _ in snapshots), futures, time.monotonic())

    def due(self) -> int:
        """Records of the checkpoint in flight that its schedule wants sent by now."""
        flight = self._flight
        if flight is None:
            return 0
        share = (1.0 if self.spread_s <= 0
                 else min(1.0, (time.monotonic() - flight.started) / self.spread_s))
        return max(math.ceil(share * flight.total) - flight.written, 0)

    def advance(self, budget: int) -> tuple[list[TopicPartition], float] | None:
        """Steps 2-4, sending at most `budget` records now. None while still in flight; once
        committed: the partitions whose commit the group refused (a rebalance took them:
        their engines are stale) and the seconds the checkpoint took."""
        flight = self._flight
        assert flight is not None
        self._send(flight, islice(flight.records, budget))
        if flight.written < flight.total or not all(f.is_done for f in flight.futures):
            return None
        return self._finish(flight)

    def commit(self, parts: dict[TopicPartition, PartitionWork]) -> list[TopicPartition]:
        """All four steps now, after the checkpoint in flight if any; returns the refused
        partitions."""
        refused = self.complete()
        self.start({tp: w for tp, w in parts.items() if tp not in refused})
        return refused + self.complete()

    def complete(self) -> list[TopicPartition]:
        """Finish the checkpoint in flight, if any, blocking; returns the refused partitions."""
        flight = self._flight
        if flight is None:
            return []
        self._send(flight, flight.records)
        if flight.futures:
            self.producer.flush(timeout=self.timeout_s)
        return self._finish(flight)[0]

    def forget(self, tps: list[TopicPartition]) -> None:
        """These partitions left: never commit them from the checkpoint in flight."""
        if self._flight is not None:
            for tp in tps:
                self._flight.offsets.pop(tp, None)
                self._flight.works.pop(tp, None)

    def _send(self, flight: _InFlight, records: Iterable[StateRecord]) -> None:
        """Send these records of the checkpoint in flight."""
        for partition, offset, key, value in records:
            flight.futures.append(send_state(self.producer, self.changelog_topic, partition,
                                             offset, key, value))
            flight.written += 1

    def _snapshot(self, partition: int, work: PartitionWork
                  ) -> tuple[int, Iterator[StateRecord]]:
        """How many state records, and the records, of one partition as it stands."""
        engine, offset = work.engine, work.position
        if not self.write_state:
            engine.dirty.clear()
            engine.evicted.clear()
            return 0, iter(())
        arena = engine.arena
        tombstones = [stream_key(s) for s in dict.fromkeys(engine.evicted)
                      if engine.slot_of(s) is None]
        slots = np.array(sorted(engine.dirty), dtype=np.int64)
        streams = [arena.stream_ids[s] for s in slots]
        names = [arena.metric_names[s] for s in slots]
        rows = {name: arr[slots] for name, arr in arena.arrays.items()}  # copies
        shared = encode_shared(engine.shared_state(), engine.config.shape)
        layout = arena.specs
        engine.dirty.clear()
        engine.evicted.clear()

        def records() -> Iterator[StateRecord]:
            for key in tombstones:
                yield partition, offset, key, None
            for start in range(0, len(slots), ENCODE_CHUNK):
                part = slice(start, start + ENCODE_CHUNK)
                chunk = {name: arr[part] for name, arr in rows.items()}
                encoded = encode_rows(streams[part], names[part], chunk, layout)
                for stream, value in zip(streams[part], encoded, strict=True):
                    yield partition, offset, stream_key(stream), value
            yield partition, offset, ENGINE_KEY, shared

        return len(tombstones) + len(slots) + 1, records()

    def _finish(self, flight: _InFlight) -> tuple[list[TopicPartition], float]:
        self._flight = None
        for fut in flight.futures:
            try:
                fut.get(timeout=0)
            except Exception as exc:
                raise DeliveryError(f"alert, dead-letter or changelog record not "
                                    f"acknowledged by the broker: {exc}") from exc
        seconds = time.monotonic() - flight.started
        if not flight.offsets:
            return [], seconds
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in flight.offsets.items()}
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("commit_failed_rebalance", error=str(exc),
                        partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in offsets))
            return list(offsets), seconds
        for tp, work in flight.works.items():
            work.committed = flight.offsets[tp]
        log.debug("checkpoint", partitions=len(offsets), state_records=flight.written,
                  seconds=round(seconds, 4))
        return [], seconds
