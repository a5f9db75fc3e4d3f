"""The daemon loop: poll → parse → engine → alerts → checkpoint, rebalances, a graceful stop.

Each input partition has its own Engine, so a partition's scores depend only on its own
records, in offset order. Every commit interval, as soon as the input runs dry, and at
shutdown, a checkpoint (detector/state/checkpoint.py) waits for the alerts, writes the changed state
to the changelog and then commits the offsets; on assignment a partition's state is restored
from the changelog as of the committed offset. A crash therefore re-processes at most about one
and a half intervals of input (the interval and the checkpoint being written) from the very
state it was first processed with: the same alerts, with the same ids.

Polls take small batches while the daemon keeps up (an alert leaves when its batch is scored)
and large ones while it catches up.

Beside the loop: the group's assignment (assignment.py) and each partition's state
(partitions.py) on the way in, alerts and dead letters (output.py) on the way out, the counts
and probes (telemetry.py, probes.py) throughout.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from typing import Any

import structlog
from kafka import TopicPartition
from kafka.errors import AuthorizationError, KafkaError

from detector.daemon.assignment import RebalanceListener
from detector.daemon.input_topic import InputTopic
from detector.daemon.memory_budget import check_budget
from detector.daemon.outbox import Outbox
from detector.daemon.output import Output
from detector.daemon.partitions import Partitions
from detector.daemon.telemetry import Telemetry
from detector.engine import Engine, EngineConfig, Event, Rejection
from detector.errors import SettingsError
from detector.kafka_clients import build_consumer, ensure_topics
from detector.records import Limits, parse_event
from detector.settings import Settings
from detector.state.changelog import MAX_RECORD_BYTES
from detector.state.checkpoint import Checkpoint, Outcome

log = structlog.get_logger("detector.daemon.loop")

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
POLL_RETRY_S = 0.5  # after a poll failed (the group coordinator away, the member fenced)


class Daemon:
    """Consumes metric events, scores them, publishes alerts, commits offsets."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.engine_config = EngineConfig.from_settings(settings)
        if settings.model.path:
            try:
                self.model_version = Engine(self.engine_config).model_version
            except ValueError as exc:
                raise SettingsError(f"DETECTOR_MODEL_PATH: {exc}") from None
        self.limits = Limits(settings.state.max_event_bytes, settings.state.max_stream_id_length,
                             settings.model.max_metrics)
        self.telemetry = Telemetry.from_settings(settings)
        # Set by a signal, possibly before the daemon existed (cli installs handlers first).
        self._stop = stop or threading.Event()
        self.consumer: Any = None
        self._watchdog: threading.Timer | None = None
        self.outbox: Outbox | None = None
        self.checkpoint: Checkpoint | None = None
        self.partitions: Partitions | None = None
        self.output: Output | None = None
        self._stats_at, self._stats_events = time.monotonic(), 0  # of the last progress line
        self._poll_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Stop after the current batch; exit hard if that overruns the shutdown deadline."""
        if self._watchdog is not None:
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
        if self._stop.is_set():  # a signal came during start-up
            self._stop.clear()
            self.request_stop()

    @property
    def parts(self) -> dict[TopicPartition, Any]:
        """The partitions whose state is ready, with their engines and positions."""
        return self.partitions.works if self.partitions is not None else {}

    def run(self) -> None:
        k = self.settings.kafka
        if self._stop.is_set():
            log.info("daemon_stopped", before="start")
            return
        self.telemetry.start()
        if k.create_topics:
            ensure_topics(k, [k.input_topic, k.output_topic, k.dlq_topic])
        # Large batches: a checkpoint sends thousands of state records at once, and every new
        # batch wakes the sender thread (alerts still leave after linger_ms).
        self.outbox = Outbox(k, max_request_size=MAX_RECORD_BYTES, batch_size=1024 * 1024)
        self.consumer = build_consumer(k)
        self.checkpoint = Checkpoint(
            self.outbox, self.consumer, k.changelog, self.settings.state.checkpoints,
            k.request_timeout_ms / 1000,
            spread_s=self.settings.service.commit_interval_s * CHECKPOINT_SPREAD)
        self.partitions = Partitions(self.settings, self.engine_config, self.consumer,
                                     self.checkpoint, self.outbox, self.telemetry)
        self.output = Output(k, self.outbox, self.checkpoint, self.telemetry)
        self._rebalance = RebalanceListener(self.telemetry, self.settings.state.max_partitions)
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
        eager_after = started  # an idle daemon checkpoints at once, unless a commit failed
        interval = self.settings.service.commit_interval_s
        clean = False
        behind = True  # more than a batch of the largest size waits (until fetches tell)
        try:
            while not self._stop.is_set():
                # While a checkpoint is in flight, each turn advances it: waiting for records
                # that may not come would stretch it (and the commit) by a poll timeout per turn.
                wait_ms = CHECKPOINT_POLL_MS if self.checkpoint.in_flight else k.poll_timeout_ms
                size = k.max_poll_records if behind else min(k.max_poll_records, KEEPING_UP_BATCH)
                assignments = self._rebalance.assignments
                batch = self._poll(wait_ms, size)
                assigned = self._rebalance.take()
                # Partitions sought to their restored position now: what this poll returned
                # of theirs was fetched from elsewhere (the commit, before the seek).
                positioned = (self.partitions.assign(assigned) if assigned is not None
                              else self.partitions.restore_pending())
                batch = {tp: recs for tp, recs in batch.items() if tp not in positioned}
                # Without a rebalance in this turn, a record or a consumer position below a
                # partition's position means the input's offsets went backwards.
                steady = assigned is None and self._rebalance.assignments == assignments
                if batch:
                    scoring_from = time.monotonic()
                    self.process_batch(batch, steady=steady)
                    self.telemetry.batch_done(time.monotonic() - scoring_from)
                if steady and self._rebalance.assignments == assignments:
                    self.partitions.check_positions()
                lag = self.telemetry.observe_loop(self.consumer,
                                                  {tp: w.engine for tp, w in self.parts.items()})
                behind = lag >= k.max_poll_records
                self.input_topic.recheck(assigned=bool(self.parts or self.partitions.pending))
                now = time.monotonic()
                idle = not batch  # nothing came for a poll timeout (5 ms while in flight)
                if self.checkpoint.in_flight:
                    # On its schedule while scoring; as fast as it goes while idle.
                    due = (CHECKPOINT_RECORDS_PER_TURN if idle
                           else min(self.checkpoint.due(), CHECKPOINT_RECORDS_PER_TURN))
                    done = self.checkpoint.advance(due)
                    if done is not None:
                        self._committed(done)
                        if done.refused:  # the group is changing: retry on schedule, not
                            eager_after = now + interval  # in every turn of a rebalance
                elif (now - last_commit >= interval
                      or (idle and now >= eager_after
                          and any(w.moved for w in self.parts.values()))):
                    self.checkpoint.start(self.parts)
                    last_commit = now
                if now - self._stats_at >= self.settings.service.stats_interval_s:
                    self._log_stats(now - started)
            clean = True
        finally:
            self._close(time.monotonic() - started, clean)

    def _poll(self, wait_ms: int, size: int) -> dict[TopicPartition, list[Any]]:
        """One poll; a group or broker error is logged (once per cause) and retried, since
        the consumer rejoins and reconnects by itself on its next poll."""
        try:
            batch = self.consumer.poll(timeout_ms=wait_ms, max_records=size)
        except AuthorizationError as exc:
            raise SettingsError(f"DETECTOR_KAFKA_GROUP_ID / DETECTOR_KAFKA_INPUT_TOPIC: the "
                                f"cluster refused this principal ({type(exc).__name__})"
                                ) from None
        except KafkaError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self._poll_error:
                log.warning("poll_failed", error=error, retry_s=POLL_RETRY_S)
                self._poll_error = error
            self._stop.wait(POLL_RETRY_S)
            return {}
        self._poll_error = None
        return batch

    def commit(self) -> None:
        """A whole checkpoint of every partition, now (after the one in flight, if any)."""
        assert self.checkpoint is not None
        self._committed(self.checkpoint.commit(self.parts))

    def _committed(self, outcome: Outcome) -> None:
        """After a checkpoint: a commit is a round trip to the group coordinator; a record the
        broker did not acknowledge means the work since the last commit is done again."""
        assert self.partitions is not None
        if outcome.refused:
            self.telemetry.checkpoint_failed()
        if outcome.committed:
            self.telemetry.broker_answered()
        if outcome.undelivered is not None:
            self.partitions.redo(outcome.undelivered)
        self.telemetry.checkpoint_done(outcome.seconds)

    def _close(self, elapsed: float, clean: bool) -> None:
        if clean and self.checkpoint is not None:
            self.commit()
        self._log_stats(elapsed)
        if self.outbox is not None:
            self.outbox.close(timeout=self.settings.service.shutdown_timeout_s)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        self.telemetry.stop()
        if self._watchdog is not None:
            self._watchdog.cancel()
        log.info("daemon_stopped")

    def _log_stats(self, elapsed: float) -> None:
        """The progress line: totals, the rate since the last line and the average since
        start-up."""
        totals, events = self.telemetry.totals, self.telemetry.totals.events
        unlogged = self.output.unlogged if self.output is not None else 0
        if self.output is not None:
            self.output.next_interval()
        now = time.monotonic()
        since = now - self._stats_at
        rate = (events - self._stats_events) / since if since > 0 else 0.0
        self._stats_at, self._stats_events = now, events
        log.info("progress", events=events, alerts=totals.alerts, bad_records=totals.bad_records,
                 bad_records_unlogged=unlogged, evictions=totals.evictions,
                 streams=sum(w.engine.streams for w in self.parts.values()),
                 events_per_s=round(rate, 1),
                 events_per_s_avg=round(events / elapsed, 1) if elapsed > 0 else 0.0)

    # -- one batch ------------------------------------------------------------------------

    def process_batch(self, batch: dict[TopicPartition, list[Any]], *,
                      steady: bool = False) -> None:
        """Score a batch. `steady`: no rebalance in this turn, so a record below its
        partition's position means the input's offsets went backwards."""
        assert self.partitions is not None
        for tp, records in batch.items():
            work = self.parts.get(tp)
            if work is None:  # fetched before a rebalance took it away, or not restored yet
                continue
            if steady and records and records[0].offset < work.position:
                self.partitions.start_over(tp, records[0].offset)
                work = self.parts[tp]
            # A partition kept through a rebalance may be fetched again from its commit.
            records = [r for r in records if r.offset >= work.position]
            if records:
                self._score(work.engine, records)
                work.position = records[-1].offset + 1

    def _score(self, engine: Engine, records: list[Any]) -> None:
        """One partition's records, in offset order: parse, score, publish."""
        assert self.output is not None
        events: list[Event] = []
        kept: list[Any] = []  # the record of each event
        for rec in records:
            parsed = parse_event(rec.key, rec.value, self.limits)
            if isinstance(parsed, Rejection):
                self.output.bad_record(parsed, rec)
            else:
                events.append(parsed)
                kept.append(rec)
        self.telemetry.consumed(len(records))
        result = engine.process(events)
        self.telemetry.evicted(result.evicted)
        for reason, rec in zip(result.rejected, kept, strict=True):
            if reason is not None:
                self.output.bad_record(reason, rec)
        self.output.alerts(result, events, kept, engine.model_version)
        self.telemetry.scored(result.rejected.count(None))
