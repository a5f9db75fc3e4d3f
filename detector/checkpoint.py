"""Checkpoint.commit(): the numbered steps that keep alerts, state and input offsets in agreement.

1. Wait until the broker acknowledged every alert and dead-letter record sent so far.
2. Write each partition's changed state to the changelog: tombstones of evicted streams, the
   streams that changed, the engine's shared state, each tagged with the input offset it
   reflects.
3. Flush, and check every state record was acknowledged.
4. Commit the input offsets.

A crash anywhere before step 4 leaves the previous commit in force: the input is processed again
from there, on the state restored as of that commit (records of step 2 are tagged past it and
ignored), and produces the same alerts with the same ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass
class PartitionWork:
    """An assigned input partition: its engine and how far it got."""

    engine: Engine
    position: int           # next input offset to process
    committed: int          # input offset of the last successful commit


@dataclass
class Checkpoint:
    producer: Any
    consumer: Any
    changelog_topic: str
    write_state: bool
    timeout_s: float
    _sent: list[Any] = field(default_factory=list)

    def track(self, futures: list[Any]) -> None:
        """Alert and dead-letter sends that must be acknowledged before the next commit."""
        self._sent.extend(futures)

    def commit(self, parts: dict[TopicPartition, PartitionWork]) -> list[TopicPartition]:
        """Run the four steps for the partitions that moved; returns those whose offset
        commit the group refused (a rebalance took them: their engines are stale)."""
        started = time.monotonic()
        moved = {tp: w for tp, w in parts.items() if w.position > w.committed}
        # 1. Alerts and dead letters acknowledged.
        self._acknowledge(self._sent, "alert or dead-letter record")
        self._sent = []
        if not moved:
            return []
        # 2. State records tagged with the offset they reflect.
        written = 0
        if self.write_state:
            futures = []
            for tp, work in moved.items():
                futures += self._write_partition(tp.partition, work)
            written = len(futures)
            # 3. Flushed and acknowledged.
            self._acknowledge(futures, "changelog record")
        else:
            for work in moved.values():
                work.engine.dirty.clear()
                work.engine.evicted.clear()
        # 4. Input offsets committed.
        offsets = {tp: OffsetAndMetadata(w.position, "", -1) for tp, w in moved.items()}
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("commit_failed_rebalance", error=str(exc),
                        partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in moved))
            return list(moved)
        for work in moved.values():
            work.committed = work.position
        log.debug("checkpoint", partitions=len(moved), state_records=written,
                  seconds=round(time.monotonic() - started, 4))
        return []

    def _write_partition(self, partition: int, work: PartitionWork) -> list[Any]:
        engine, topic, offset = work.engine, self.changelog_topic, work.position
        layout = engine.arena.specs
        futures = [send_state(self.producer, topic, partition, offset, stream_key(stream), None)
                   for stream in dict.fromkeys(engine.evicted)
                   if engine.slot_of(stream) is None]
        arena = engine.arena
        slots = np.array(sorted(engine.dirty), dtype=np.int64)
        streams = [arena.stream_ids[s] for s in slots]
        records = encode_rows(streams, [arena.metric_names[s] for s in slots], arena.arrays,
                              slots, layout)
        for stream, record in zip(streams, records, strict=True):
            futures.append(send_state(self.producer, topic, partition, offset,
                                      stream_key(stream), record))
        futures.append(send_state(self.producer, topic, partition, offset, ENGINE_KEY,
                                  encode_shared(engine.shared_state(), engine.config.shape)))
        engine.dirty.clear()
        engine.evicted.clear()
        return futures

    def _acknowledge(self, futures: list[Any], what: str) -> None:
        if not futures:
            return
        self.producer.flush(timeout=self.timeout_s)
        for fut in futures:
            try:
                fut.get(timeout=0)
            except Exception as exc:
                raise DeliveryError(f"{what} not acknowledged by the broker: {exc}") from exc
