"""The daemon loop: poll → parse → engine → alerts → checkpoint, rebalances, a graceful stop.

Each input partition has its own Engine, so a partition's scores depend only on its own
records, in offset order. Every commit interval, as soon as the input runs dry, and at
shutdown, a checkpoint (detector/checkpoint.py) waits for the alerts, writes the changed state
to the changelog and then commits the offsets; on assignment a partition's state is restored
from the changelog as of the committed offset. A crash therefore re-processes at most about one
and a half intervals of input (the interval and the checkpoint being written) from the very
state it was first processed with: the same alerts, with the same ids.

Polls take small batches while the daemon keeps up (an alert leaves when its batch is scored)
and large ones while it catches up.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from kafka import ConsumerRebalanceListener, TopicPartition

from detector.alerts import Alert, alert_log_fields
from detector.checkpoint import Checkpoint, PartitionWork
from detector.engine import Engine, EngineConfig, Event
from detector.engine.policy import severity
from detector.errors import SettingsError
from detector.input_topic import InputTopic
from detector.io.changelog import MAX_RECORD_BYTES, ensure_changelog, read_state
from detector.io.kafka import build_consumer, build_producer, ensure_topics
from detector.memory_budget import check_budget
from detector.records import BadRecord, Coordinates, Limits, parse_event
from detector.settings import Settings
from detector.state.codec import load_records
from detector.telemetry import Telemetry

log = structlog.get_logger("detector.service")

BAD_RECORD_LOG_LINES = 100  # per stats interval: a flood of bad input must not flood the log
# The most state records a checkpoint in flight sends per turn of the loop: a few ms of
# encoding and sending, so a turn of the loop (and the latency of its events) grows little.
CHECKPOINT_RECORDS_PER_TURN = 150
# A checkpoint's records are spread over this share of the commit interval.
CHECKPOINT_SPREAD = 0.5
# Records per poll while the daemon keeps up: an event's alert leaves when its whole batch is
# scored, so small batches keep the latency low. While more than a batch of the largest size
# (DETECTOR_KAFKA_MAX_POLL_RECORDS) is waiting, polls take that many: larger batches cost
# less per event and catch up sooner.
KEEPING_UP_BATCH = 500
CHECKPOINT_POLL_MS = 5  # the longest a turn waits for records while a checkpoint is in flight


@dataclass
class Counters:
    events: int = 0
    alerts: int = 0
    bad_records: int = 0
    bad_records_unlogged: int = 0   # beyond BAD_RECORD_LOG_LINES in one stats interval
    evictions: int = 0
    batches: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)


class _Rebalance(ConsumerRebalanceListener):
    """Notes the assignment; the main loop acts on it after poll() returns (kafka-python 3
    runs listeners on its I/O thread, where no blocking client call is allowed)."""

    def __init__(self, telemetry: Telemetry, max_partitions: int = 0) -> None:
        self.telemetry = telemetry
        self.max_partitions = max_partitions
        self._lock = threading.Lock()
        self._assigned: set[TopicPartition] | None = None

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.telemetry.revoked(tp.partition for tp in revoked)
        if revoked:
            log.info("partitions_revoked", partitions=sorted(_name(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.telemetry.assigned(tp.partition for tp in assigned)
        log.info("partitions_assigned", partitions=sorted(_name(tp) for tp in assigned))
        if 0 < self.max_partitions < len(assigned):
            log.warning("partitions_over_memory_budget", partitions=len(assigned),
                        max_partitions=self.max_partitions,
                        detail="memory was checked for DETECTOR_STATE_MAX_PARTITIONS only")
        with self._lock:
            self._assigned = set(assigned)

    def take(self) -> set[TopicPartition] | None:
        """The newest assignment since the last call, or None when there was none."""
        with self._lock:
            assigned, self._assigned = self._assigned, None
        return assigned


def _coordinates(rec: Any) -> Coordinates:
    return Coordinates(rec.topic, rec.partition, rec.offset)


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


class Daemon:
    """Consumes metric events, scores them, publishes alerts, commits offsets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine_config = EngineConfig.from_settings(settings)
        if settings.model.path:
            try:
                self.model_version = Engine(self.engine_config).model_version
            except ValueError as exc:
                raise SettingsError(f"DETECTOR_MODEL_PATH: {exc}") from None
        self.limits = Limits(settings.state.max_event_bytes, settings.state.max_stream_id_length,
                             settings.model.max_metrics)
        self.parts: dict[TopicPartition, PartitionWork] = {}
        self.counters = Counters()
        self.telemetry = Telemetry.from_settings(settings)
        self._stop = threading.Event()
        self.consumer: Any = None
        self._watchdog: threading.Timer | None = None
        self.producer: Any = None
        self.checkpoint: Checkpoint | None = None
        self._bad_logged = 0
        self._stats_at, self._stats_events = time.monotonic(), 0  # of the last progress line

    # -- lifecycle ------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Stop after the current batch; exit hard if that overruns the shutdown deadline."""
        if self._stop.is_set():
            return
        deadline = self.settings.service.shutdown_timeout_s
        log.info("stop_requested", deadline_s=deadline)
        self._watchdog = threading.Timer(deadline, self._deadline_exceeded)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._stop.set()

    def _deadline_exceeded(self) -> None:
        log.error("shutdown_deadline_exceeded", seconds=self.settings.service.shutdown_timeout_s)
        os._exit(1)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> None:
        k = self.settings.kafka
        self.telemetry.start()
        if k.create_topics:
            ensure_topics(k, [k.input_topic, k.output_topic, k.dlq_topic])
        # Large batches: a checkpoint sends thousands of state records at once, and every new
        # batch wakes the sender thread (alerts still leave after linger_ms).
        self.producer = build_producer(k, max_request_size=MAX_RECORD_BYTES,
                                       batch_size=1024 * 1024)
        self.consumer = build_consumer(k)
        self.checkpoint = Checkpoint(
            self.producer, self.consumer, k.changelog, self.settings.state.checkpoints,
            k.request_timeout_ms / 1000,
            spread_s=self.settings.service.commit_interval_s * CHECKPOINT_SPREAD)
        self._rebalance = _Rebalance(self.telemetry, self.settings.state.max_partitions)
        self.input_topic = InputTopic(self.consumer, k.input_topic, self.telemetry)
        topic_partitions = self.input_topic.wait(self._stop, self.telemetry.loop_turned)
        if topic_partitions is None:  # stopped while waiting for the topic
            self._close(0.0, clean=False)
            return
        check_budget(self.settings, topic_partitions)
        self.consumer.subscribe([k.input_topic], listener=self._rebalance)
        # The heap holds ~10^6 objects from imports (torch, numpy, kafka) that live as long as
        # the process; a full collection walking them paused the loop ~160 ms every few
        # seconds. Frozen, they are never walked again.
        gc.collect()
        gc.freeze()
        log.info("daemon_started", input_topic=k.input_topic, output_topic=k.output_topic,
                 group_id=k.group_id, bootstrap_servers=k.bootstrap_servers,
                 changelog_topic=k.changelog if self.settings.state.checkpoints else None)
        started = last_commit = self._stats_at = time.monotonic()
        interval = self.settings.service.commit_interval_s
        clean = False
        behind = True  # more than a batch of the largest size waits (until fetches tell)
        try:
            while not self._stop.is_set():
                # While a checkpoint is in flight, each turn advances it: waiting for records
                # that may not come would stretch it (and the commit) by a poll timeout per turn.
                wait_ms = CHECKPOINT_POLL_MS if self.checkpoint.in_flight else k.poll_timeout_ms
                size = k.max_poll_records if behind else min(k.max_poll_records, KEEPING_UP_BATCH)
                batch = self.consumer.poll(timeout_ms=wait_ms, max_records=size)
                assigned = self._rebalance.take()
                if assigned is not None:
                    self.adopt(assigned)
                if batch:
                    polled_at = time.monotonic()
                    self.process_batch(batch)
                    self.telemetry.batch_done(time.monotonic() - polled_at)
                lag = self.telemetry.observe_loop(self.consumer,
                                                  {tp: w.engine for tp, w in self.parts.items()})
                behind = lag >= k.max_poll_records
                self.input_topic.recheck(assigned=bool(self.parts))
                now = time.monotonic()
                idle = not batch  # nothing came for a poll timeout (5 ms while in flight)
                if self.checkpoint.in_flight:
                    # On its schedule while scoring; as fast as it goes while idle.
                    due = (CHECKPOINT_RECORDS_PER_TURN if idle
                           else min(self.checkpoint.due(), CHECKPOINT_RECORDS_PER_TURN))
                    done = self.checkpoint.advance(due)
                    if done is not None:
                        self._committed(*done)
                elif (now - last_commit >= interval
                      or (idle and any(w.moved for w in self.parts.values()))):
                    self.checkpoint.start(self.parts)
                    last_commit = now
                if now - self._stats_at >= self.settings.service.stats_interval_s:
                    self._log_stats(now - started)
            clean = True
        finally:
            self._close(time.monotonic() - started, clean)

    def commit(self) -> None:
        """A whole checkpoint of every partition, now (after the one in flight, if any)."""
        assert self.checkpoint is not None
        started = time.monotonic()
        self._committed(self.checkpoint.commit(self.parts), time.monotonic() - started)

    def _committed(self, refused: list[TopicPartition], seconds: float) -> None:
        """After a checkpoint: drop the engines of partitions the group took meanwhile."""
        for tp in refused:
            self.parts.pop(tp, None)
        if refused:
            self.telemetry.checkpoint_failed()
        else:
            self.telemetry.broker_answered()
        self.telemetry.checkpoint_done(seconds)

    def adopt(self, assigned: set[TopicPartition]) -> None:
        """Take up a new assignment. Partitions that left are dropped: their new owner
        restores them as of the last checkpoint. A partition kept through the rebalance keeps
        its engine unless another member committed past it meanwhile; every other partition
        is restored from the changelog as of its committed offset."""
        assert self.checkpoint is not None
        gone = [tp for tp in self.parts if tp not in assigned]
        committed = {tp: self.consumer.committed(tp) or 0 for tp in assigned}
        gone += [tp for tp, w in self.parts.items()
                 if tp in assigned and committed[tp] > w.position]
        self.checkpoint.forget(gone)
        for tp in gone:
            del self.parts[tp]
        for tp, work in self.parts.items():
            self.consumer.seek(tp, work.position)  # the fetcher went back to the commit
            self.telemetry.restored(tp.partition)
        self.restore([tp for tp in assigned if tp not in self.parts], committed)

    def restore(self, fresh: list[TopicPartition], offsets: dict[TopicPartition, int]) -> None:
        """Build these partitions' engines from the changelog as of their committed offsets."""
        if not fresh:
            return
        started = time.monotonic()
        committed = {tp.partition: offsets[tp] for tp in fresh}
        states = {}
        if self.settings.state.checkpoints:
            n_input = len(self.consumer.partitions_for_topic(fresh[0].topic) or fresh)
            ensure_changelog(self.settings.kafka, max(n_input, max(committed) + 1))
            states = read_state(self.settings.kafka, committed,
                                timeout_s=self.settings.state.restore_timeout_s)
        for tp in fresh:
            engine = Engine(self.engine_config)
            state = states.get(tp.partition)
            if state is not None and state.engine is not None:
                try:
                    load_records(engine, state.engine, state.streams.values())
                except (ValueError, KeyError, TypeError) as exc:
                    # Unreadable state must not crash-loop the daemon: the partition starts
                    # afresh from its committed offset, loudly.
                    log.warning("state_not_restored", partition=_name(tp),
                                reason=f"{type(exc).__name__}: {exc}")
                    engine = Engine(self.engine_config)
            offset = committed[tp.partition]
            self.parts[tp] = PartitionWork(engine, offset, offset)
            seconds = time.monotonic() - started
            self.telemetry.restored(tp.partition, seconds, len(engine.arena))
            log.info("partition_restored", partition=_name(tp), committed_offset=offset,
                     streams=len(engine.arena),
                     changelog_records=state.records_read if state else 0,
                     seconds=round(seconds, 3))

    def _close(self, elapsed: float, clean: bool) -> None:
        if clean and self.checkpoint is not None:
            self.commit()
        self._log_stats(elapsed)
        if self.producer is not None:
            self.producer.flush(timeout=self.settings.service.shutdown_timeout_s)
            self.producer.close(timeout=self.settings.service.shutdown_timeout_s)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        self.telemetry.stop()
        if self._watchdog is not None:
            self._watchdog.cancel()
        log.info("daemon_stopped")

    def _log_stats(self, elapsed: float) -> None:
        """The progress line: totals, the rate since the last line and the average since
        start-up."""
        c = self.counters
        self._bad_logged = 0
        now = time.monotonic()
        since = now - self._stats_at
        rate = (c.events - self._stats_events) / since if since > 0 else 0.0
        self._stats_at, self._stats_events = now, c.events
        log.info("progress", events=c.events, alerts=c.alerts, bad_records=c.bad_records,
                 bad_records_unlogged=c.bad_records_unlogged, evictions=c.evictions,
                 streams=sum(len(w.engine.arena) for w in self.parts.values()),
                 events_per_s=round(rate, 1),
                 events_per_s_avg=round(c.events / elapsed, 1) if elapsed > 0 else 0.0)

    # -- one batch ------------------------------------------------------------------------

    def process_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        k = self.settings.kafka
        futures = []
        for tp, records in batch.items():
            work = self.parts.get(tp)
            if work is None:  # fetched before a rebalance took the partition away
                continue
            # A partition kept through a rebalance may be fetched again from its commit.
            records = [r for r in records if r.offset >= work.position]
            if not records:
                continue
            engine = work.engine
            events: list[Event] = []
            kept: list[Any] = []  # the record of each event
            for rec in records:
                parsed = parse_event(rec.key, rec.value, self.limits)
                if isinstance(parsed, str):
                    futures += self._bad(BadRecord(parsed, _coordinates(rec), rec.key,
                                                   rec.value))
                else:
                    events.append(parsed)
                    kept.append(rec)
            self.telemetry.consumed(len(records))
            evicted_before = len(engine.evicted)
            result = engine.process(events)
            evicted = len(engine.evicted) - evicted_before
            self.counters.evictions += evicted
            self.telemetry.evicted(evicted)
            for i, reason in enumerate(result.rejected):
                if reason is not None:
                    futures += self._bad(BadRecord(reason, _coordinates(kept[i]),
                                                   kept[i].key, kept[i].value))
            for i in result.alert.nonzero()[0]:
                ev = events[i]
                expected, actual = result.explanation(int(i))
                alert = Alert.build(
                    coords=_coordinates(kept[i]), stream=ev.stream, ts=ev.ts, score=result.score[i],
                    threshold=result.threshold[i],
                    severity=severity(result.score[i], self.engine_config.critical_threshold),
                    error=result.error[i], expected=expected, actual=actual,
                    model_version=engine.model_version)
                futures.append(self.producer.send(k.output_topic, key=ev.stream.encode(),
                                                  value=alert.to_json()))
                self.counters.alerts += 1
                self.telemetry.alert_published(alert.severity)
                log.info("alert", **alert_log_fields(alert))
                self.counters.by_severity[alert.severity] = (
                    self.counters.by_severity.get(alert.severity, 0) + 1)
            scored = result.rejected.count(None)
            self.counters.events += scored
            self.telemetry.scored(scored)
            work.position = records[-1].offset + 1
        assert self.checkpoint is not None
        self.checkpoint.track(futures)
        self.counters.batches += 1

    def _bad(self, bad: BadRecord) -> list[Any]:
        self.counters.bad_records += 1
        self.telemetry.bad_record(bad.reason)
        if self._bad_logged < BAD_RECORD_LOG_LINES:
            self._bad_logged += 1
            log.warning("bad_record", source=str(bad.coords), reason=bad.reason)
        else:
            self.counters.bad_records_unlogged += 1
        dlq = self.settings.kafka.dlq_topic
        if not dlq:
            return []
        key, value = bad.dead_letter()
        return [self.producer.send(dlq, key=key, value=value)]
