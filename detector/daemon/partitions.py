"""The input partitions this member owns: taking up an assignment, restoring their state,
noticing input offsets that went backwards, and doing work again after a failed delivery.

An assigned partition is in one of two places:

- `works`: its state is ready; its engine scores its records from `position` on;
- `pending`: its state is not ready yet. It is paused in the consumer, so none of its records
  is taken and dropped meanwhile, and every turn of the loop tries again to learn its committed
  offset and restore it, as long as the broker does not answer.

Deciding what state a partition starts from, given the group's committed offset C:

- a partition kept through a rebalance keeps its engine, unless another member committed past
  it (C > position: restore as of C) or C went below this member's own last commit (the
  offsets went backwards: the broker lost the group's offsets or an operator reset them);
- otherwise the state is restored from the changelog as of C, or started afresh without C.

While running, a record below a partition's position, or a consumer position below it, means
the log itself went backwards (truncated, or deleted and created again): the consumer's fetch
fell out of range and was reset. The partition starts afresh where the consumer now is, and
its checkpoints write a reset marker so that no restore mixes in state of the old log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import TopicPartition
from kafka.errors import KafkaError

from detector.daemon.outbox import Outbox
from detector.daemon.telemetry import Telemetry
from detector.engine import Engine, EngineConfig
from detector.errors import BrokerUnavailableError, RestoreTimeoutError
from detector.settings import Settings
from detector.state.changelog import ensure_changelog
from detector.state.checkpoint import Checkpoint, PartitionWork
from detector.state.restore import Restored, restore_partitions

log = structlog.get_logger("detector.daemon.partitions")

RETRY_S = 1.0  # between attempts to restore partitions while the broker does not answer


def name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


@dataclass
class _Pending:
    keep: PartitionWork | None = None  # the engine it had, if kept through a rebalance
    reset_from: int | None = None      # a reset marker still to be committed
    last_commit: int = 0               # this member's last commit of it, if it had it

    @classmethod
    def of(cls, work: PartitionWork | None, *, keep: bool) -> _Pending:
        if work is None:
            return cls()
        return cls(work if keep else None, work.reset_from, work.committed)


class Partitions:
    """Owns the PartitionWork of every assigned partition and how it comes to be."""

    def __init__(self, settings: Settings, engine_config: EngineConfig, consumer: Any,
                 checkpoint: Checkpoint, outbox: Outbox, telemetry: Telemetry) -> None:
        self.settings, self.engine_config = settings, engine_config
        self.consumer, self.checkpoint, self.outbox = consumer, checkpoint, outbox
        self.telemetry = telemetry
        self.works: dict[TopicPartition, PartitionWork] = {}
        self.pending: dict[TopicPartition, _Pending] = {}
        self._retry_at = 0.0
        self._deferred_error: str | None = None

    # -- assignment -----------------------------------------------------------------------

    def assign(self, assigned: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Take up a new assignment: partitions that left are dropped (their new owner
        restores them as of the last commit); every assigned one waits in `pending` until its
        committed offset tells what state it starts from. Returns the partitions positioned
        now (see restore_pending)."""
        assigned = set(assigned)
        gone = [tp for tp in (*self.works, *self.pending) if tp not in assigned]
        self.checkpoint.forget(gone)
        for tp in gone:
            self.works.pop(tp, None)
            self.pending.pop(tp, None)
        for tp in assigned:
            work = self.works.pop(tp, None)
            if tp not in self.pending:
                self.pending[tp] = _Pending.of(work, keep=True)
        self._retry_at = 0.0
        self._pause()
        return self.restore_pending()

    def redo(self, reason: str) -> None:
        """A record was not delivered: re-do every partition from its last commit, with a new
        producer. The same alerts are produced again, with the same ids."""
        log.error("delivery_failed", reason=reason, redo_from="last commit",
                  partitions=sorted(name(tp) for tp in (*self.works, *self.pending)))
        self.checkpoint.abandon()
        self.outbox.rebuild()
        for tp, work in self.works.items():
            self.pending[tp] = _Pending.of(work, keep=False)
        self.works.clear()
        self.telemetry.restoring(tp.partition for tp in self.pending)
        self._retry_at = 0.0
        self._pause()
        self.restore_pending()

    def start_over(self, tp: TopicPartition, offset: int) -> None:
        """The log of `tp` went back below this member's position: start afresh at `offset`."""
        work = self.works[tp]
        log.error("input_offsets_went_backwards", partition=name(tp), position=work.position,
                  now=offset, committed=work.committed,
                  action="starting the partition afresh; its earlier state is discarded")
        self.checkpoint.forget([tp])
        self.works[tp] = PartitionWork(Engine(self.engine_config), offset, offset,
                                       reset_from=offset)

    def check_positions(self) -> None:
        """Once per turn without a rebalance: a consumer position below the partition's means
        its fetch fell out of range and the consumer went back (see start_over)."""
        for tp, work in list(self.works.items()):
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if position is not None and position < work.position:
                self.start_over(tp, position)

    # -- restore --------------------------------------------------------------------------

    def restore_pending(self) -> set[TopicPartition]:
        """Decide and build the state of every pending partition; when the broker does not
        answer, leave them pending (paused) and try again in a while. Returns the partitions
        positioned (sought) now: records of theirs that a poll returned before are stale."""
        if not self.pending or time.monotonic() < self._retry_at:
            return set()
        started = time.monotonic()
        timeout_ms = self.settings.kafka.request_timeout_ms
        try:
            committed = {tp: self.consumer.committed(tp, timeout_ms=timeout_ms)
                         for tp in self.pending}
            plan = {tp: self._decide(pending, committed[tp])
                    for tp, pending in self.pending.items()}
            restored = self._restore({tp: c for tp, (keep, c, _) in plan.items()
                                      if keep is None})
        except (KafkaError, BrokerUnavailableError, RestoreTimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self._deferred_error:  # once per cause, not once per retry
                log.warning("restore_deferred", partitions=sorted(map(name, self.pending)),
                            error=error, retry_s=RETRY_S)
            self._deferred_error = error
            self._retry_at = time.monotonic() + RETRY_S
            return set()
        self._deferred_error = None
        self.telemetry.broker_answered()  # the committed offsets came from the coordinator
        for tp, (keep, offset, reset_from) in plan.items():
            last_commit = self.pending[tp].last_commit
            if (offset or 0) < last_commit:
                log.error("input_offsets_went_backwards", partition=name(tp),
                          last_commit=last_commit, committed=offset,
                          action=("restored as of the committed offset" if offset is not None
                                  else "started afresh: no committed offset"))
            if keep is not None:
                self.works[tp] = keep
                self.consumer.seek(tp, keep.position)
                self.telemetry.restored(tp.partition)
                continue
            state = restored[tp.partition]
            if state.unreadable is not None:
                log.warning("state_not_restored", partition=name(tp), reason=state.unreadable,
                            action="starting the partition afresh at its committed offset")
            engine = state.engine
            self.works[tp] = PartitionWork(engine, offset or 0, offset or 0, reset_from)
            self._seek(tp, offset)
            seconds = time.monotonic() - started
            self.telemetry.restored(tp.partition, seconds, engine.streams)
            log.info("partition_restored", partition=name(tp), committed_offset=offset,
                     streams=engine.streams, changelog_records=state.records_read,
                     seconds=round(seconds, 3))
        positioned = set(self.pending)
        self.consumer.resume(*positioned)
        self.pending.clear()
        return positioned

    @staticmethod
    def _decide(pending: _Pending, committed: int | None
                ) -> tuple[PartitionWork | None, int | None, int | None]:
        """(the work to keep or None to restore, the offset to restore at, a reset marker)."""
        if (committed or 0) < pending.last_commit:
            # The offsets went backwards: the group's offsets were lost or reset. Without a
            # committed offset the partition starts afresh, and the changelog's earlier
            # records must never be mixed with its new state.
            return None, committed, 0 if committed is None else pending.reset_from
        keep = pending.keep
        if keep is None or (committed or 0) > keep.position:  # another member committed past
            return None, committed, pending.reset_from
        return keep, committed, pending.reset_from

    def _restore(self, offsets: dict[TopicPartition, int | None]) -> dict[int, Restored]:
        """The engines of these partitions as of their committed offsets."""
        if not offsets:
            return {}
        if not self.settings.state.checkpoints:
            return {tp.partition: Restored(Engine(self.engine_config)) for tp in offsets}
        k = self.settings.kafka
        topic = next(iter(offsets)).topic
        n_input = len(self.consumer.partitions_for_topic(topic) or offsets)
        ensure_changelog(k, max(n_input, max(tp.partition for tp in offsets) + 1))
        return restore_partitions(k, self.engine_config,
                                  {tp.partition: o for tp, o in offsets.items()},
                                  timeout_s=self.settings.state.restore_timeout_s)

    def _seek(self, tp: TopicPartition, offset: int | None) -> None:
        if offset is not None:
            self.consumer.seek(tp, offset)
        elif self.settings.kafka.auto_offset_reset == "earliest":
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek_to_end(tp)

    def _pause(self) -> None:
        if self.pending:
            self.consumer.pause(*self.pending)
