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

A checkpoint ends in an `Outcome`: committed; refused (the group changed under the commit, or
the coordinator did not answer: the work stays not done, and the next checkpoint or the next
owner does it); or undelivered (a record was not acknowledged: the daemon re-does the work from
the last commit). Only an authorization error is fatal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import structlog
from kafka import TopicPartition
from kafka.errors import (
    AuthorizationError,
    CommitFailedError,
    FencedInstanceIdError,
    IllegalGenerationError,
    RebalanceInProgressError,
    RetriableError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from detector.engine import Engine
from detector.errors import SettingsError
from detector.kafka_clients import failure_of
from detector.state.changelog import ENGINE_KEY, RESET_KEY, reset_marker, send_state, stream_key
from detector.state.codec import encode_rows, encode_shared

log = structlog.get_logger("detector.state.checkpoint")

ENCODE_CHUNK = 1_000  # stream records encoded at a time

# The group changed under the commit (a rebalance began, this member's generation is over, it
# was removed, or another instance took its static id): the partitions' next owner re-does
# their work from the previous commit, and the member rejoins on its next poll.
MEMBERSHIP_ERRORS = (CommitFailedError, RebalanceInProgressError, IllegalGenerationError,
                     UnknownMemberIdError, FencedInstanceIdError)


@dataclass
class PartitionWork:
    """An assigned input partition: its engine and how far it got."""

    engine: Engine
    position: int           # next input offset to process
    committed: int          # input offset of the last successful commit (or of the restore)
    # Set when the input's offsets went backwards and the partition started afresh at this
    # offset: its checkpoints write a reset marker first, until one of them is committed.
    reset_from: int | None = None

    @property
    def moved(self) -> bool:
        """Scored past its last commit: the next checkpoint has something to write."""
        return self.position > self.committed


# (changelog partition, source offset, key, value or None for a tombstone)
StateRecord = tuple[int, int, bytes, bytes | None]


@dataclass(frozen=True)
class Outcome:
    """How a checkpoint ended."""

    seconds: float
    committed: bool = False     # the group coordinator accepted the offsets (a round trip)
    # Partitions whose commit the group refused or the coordinator did not answer: they are
    # re-done from their previous commit by whoever owns them next (this member, if still).
    refused: tuple[TopicPartition, ...] = ()
    # A record was not acknowledged: nothing was committed; the work must be done again.
    undelivered: str | None = None


@dataclass
class _InFlight:
    offsets: dict[TopicPartition, int]
    works: dict[TopicPartition, PartitionWork]
    records: Iterator[StateRecord]
    total: int              # records of the snapshot
    futures: list[Any]
    started: float
    written: int = 0
    failed: BaseException | None = None  # a send that failed at once: send nothing more


@dataclass
class Checkpoint:
    outbox: Any             # detector.daemon.outbox.Outbox (or a fake with its `send`, `flush`)
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

    def advance(self, budget: int) -> Outcome | None:
        """Steps 2-4, sending at most `budget` records now. None while still in flight."""
        flight = self._flight
        assert flight is not None
        self._send(flight, islice(flight.records, budget))
        if flight.failed is None and (flight.written < flight.total
                                      or not all(f.is_done for f in flight.futures)):
            return None
        return self._finish(flight)

    def commit(self, parts: dict[TopicPartition, PartitionWork]) -> Outcome:
        """All four steps now, after the checkpoint in flight if any."""
        before = self.complete()
        if before is not None and before.undelivered is not None:
            return before
        self.start({tp: w for tp, w in parts.items()
                    if before is None or tp not in before.refused})
        after = self.complete()
        assert after is not None
        if before is None:
            return after
        return Outcome(before.seconds + after.seconds, before.committed or after.committed,
                       before.refused + after.refused, after.undelivered)

    def complete(self) -> Outcome | None:
        """Finish the checkpoint in flight, if any, blocking."""
        flight = self._flight
        if flight is None:
            return None
        self._send(flight, flight.records)
        if flight.futures:
            self.outbox.flush(timeout=self.timeout_s)
        return self._finish(flight)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """These partitions left (or start over): never commit them from the checkpoint in
        flight."""
        if self._flight is not None:
            for tp in tps:
                self._flight.offsets.pop(tp, None)
                self._flight.works.pop(tp, None)

    def abandon(self) -> None:
        """Forget every send so far and the checkpoint in flight: the work they covered is
        being done again."""
        self._sent, self._flight = [], None

    def _send(self, flight: _InFlight, records: Iterable[StateRecord]) -> None:
        """Send these records of the checkpoint in flight, until one fails at once."""
        if flight.failed is not None:
            return
        for partition, offset, key, value in records:
            future = send_state(self.outbox, self.changelog_topic, partition, offset, key,
                                value)
            flight.futures.append(future)
            flight.written += 1
            flight.failed = failure_of(future)
            if flight.failed is not None:
                return

    def _snapshot(self, partition: int, work: PartitionWork
                  ) -> tuple[int, Iterator[StateRecord]]:
        """How many state records, and the records, of one partition as it stands."""
        engine, offset = work.engine, work.position
        changed, evicted = engine.take_changes()
        if not self.write_state:
            return 0, iter(())
        tombstones = [stream_key(s) for s in dict.fromkeys(evicted)
                      if engine.slot_of(s) is None]
        # After a reset marker the whole state follows it: the marker hides every earlier
        # record, those of an earlier checkpoint of this partition included.
        lanes = list(engine.rows(None if work.reset_from is not None else changed))
        shared = encode_shared(engine.shared_state(), engine.config.shape)

        marker = ([(partition, work.reset_from, RESET_KEY, reset_marker(work.reset_from))]
                  if work.reset_from is not None else [])

        def records() -> Iterator[StateRecord]:
            yield from marker
            for key in tombstones:
                yield partition, offset, key, None
            for part in lanes:
                for start in range(0, len(part.streams), ENCODE_CHUNK):
                    cut = slice(start, start + ENCODE_CHUNK)
                    chunk = {name: arr[cut] for name, arr in part.rows.items()}
                    encoded = encode_rows(part.streams[cut], part.metric_names[cut], chunk,
                                          part.layout)
                    for stream, value in zip(part.streams[cut], encoded, strict=True):
                        yield partition, offset, stream_key(stream), value
            yield partition, offset, ENGINE_KEY, shared

        rows = sum(len(part.streams) for part in lanes)
        return len(marker) + len(tombstones) + rows + 1, records()

    def _finish(self, flight: _InFlight) -> Outcome:
        self._flight = None
        seconds = time.monotonic() - flight.started
        undelivered = flight.failed or next(
            (failure_of(f) or TimeoutError("not acknowledged in time")
             for f in flight.futures if not f.is_done or failure_of(f) is not None), None)
        if undelivered is not None:
            return Outcome(seconds, undelivered=f"{type(undelivered).__name__}: {undelivered}")
        if not flight.offsets:
            return Outcome(seconds)
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in flight.offsets.items()}
        names = sorted(f"{tp.topic}[{tp.partition}]" for tp in offsets)
        try:
            self.consumer.commit(offsets, timeout_ms=int(self.timeout_s * 1000))
        except MEMBERSHIP_ERRORS as exc:
            log.warning("commit_refused_group_changed", partitions=names,
                        error=f"{type(exc).__name__}: {exc}")
            return Outcome(seconds, refused=tuple(offsets))
        except RetriableError as exc:
            log.warning("commit_failed_retrying", partitions=names,
                        error=f"{type(exc).__name__}: {exc}")
            return Outcome(seconds, refused=tuple(offsets))
        except AuthorizationError as exc:
            raise SettingsError(f"DETECTOR_KAFKA_GROUP_ID: the cluster refused this principal "
                                f"to commit offsets of the group ({type(exc).__name__})"
                                ) from None
        for tp, work in flight.works.items():
            work.committed = flight.offsets[tp]
            work.reset_from = None
        log.debug("checkpoint", partitions=len(offsets), state_records=flight.written,
                  seconds=round(seconds, 4))
        return Outcome(seconds, committed=True)
