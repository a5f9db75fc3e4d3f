"""The daemon loop: poll → parse → engine → alerts → flush → commit, and a graceful stop.

Delivery is at least once: the offsets of a batch are committed only after the broker has
acknowledged every alert (and dead-letter record) the batch produced. Each partition has its
own Engine, so a partition's scores depend only on its own records, in offset order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from detector.alerts import Alert
from detector.engine import Engine, EngineConfig, Event
from detector.engine.policy import severity
from detector.errors import DeliveryError, SettingsError
from detector.io.kafka import build_consumer, build_producer, ensure_topics
from detector.records import BadRecord, Coordinates, Limits, parse_event
from detector.settings import Settings
from detector.telemetry import Telemetry

log = structlog.get_logger("detector.service")

DLQ_PAYLOAD_BYTES = 4_096


@dataclass
class Counters:
    events: int = 0
    alerts: int = 0
    bad_records: int = 0
    batches: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Batches are committed synchronously before the next poll, so nothing is in flight
        # here; a partition's state leaves with it.
        for tp in revoked:
            self.daemon.engines.pop(tp, None)
        self.daemon.telemetry.revoked(tp.partition for tp in revoked)
        if revoked:
            log.info("partitions_revoked", partitions=sorted(_name(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.daemon.telemetry.assigned(tp.partition for tp in assigned)
        for tp in assigned:
            # State starts empty on assignment: nothing to restore yet.
            self.daemon.telemetry.restored(tp.partition)
        if assigned:
            log.info("partitions_assigned", partitions=sorted(_name(tp) for tp in assigned))


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
        self.engines: dict[TopicPartition, Engine] = {}
        self.counters = Counters()
        self.telemetry = Telemetry.from_settings(settings)
        self._stop = threading.Event()
        self.consumer: Any = None
        self._watchdog: threading.Timer | None = None
        self.producer: Any = None

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
        self.producer = build_producer(k)
        self.consumer = build_consumer(k)
        self.consumer.subscribe([k.input_topic], listener=_Rebalance(self))
        log.info("daemon_started", input_topic=k.input_topic, output_topic=k.output_topic,
                 group_id=k.group_id, bootstrap_servers=k.bootstrap_servers)
        started = last_stats = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=k.poll_timeout_ms,
                                           max_records=k.max_poll_records)
                if batch:
                    polled_at = time.monotonic()
                    self.process_batch(batch)
                    self.telemetry.batch_done(time.monotonic() - polled_at)
                self.telemetry.observe_loop(self.consumer, self.engines)
                now = time.monotonic()
                if now - last_stats >= self.settings.service.stats_interval_s:
                    self._log_stats(now - started)
                    last_stats = now
        finally:
            self._close(time.monotonic() - started)

    def _close(self, elapsed: float) -> None:
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
        c = self.counters
        log.info("progress", events=c.events, alerts=c.alerts, bad_records=c.bad_records,
                 streams=sum(len(e.arena) for e in self.engines.values()),
                 events_per_s=round(c.events / elapsed, 1) if elapsed > 0 else 0.0)

    # -- one batch ------------------------------------------------------------------------

    def process_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        k = self.settings.kafka
        futures = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batch.items():
            engine = self.engines.get(tp)
            if engine is None:
                engine = self.engines[tp] = Engine(self.engine_config)
            events: list[Event] = []
            coords: list[Coordinates] = []
            kept: list[Any] = []
            for rec in records:
                where = Coordinates(rec.topic, rec.partition, rec.offset)
                parsed = parse_event(rec.key, rec.value, self.limits)
                if isinstance(parsed, str):
                    futures += self._bad(BadRecord(parsed, where, rec.key, rec.value))
                else:
                    events.append(parsed)
                    coords.append(where)
                    kept.append(rec)
            self.telemetry.consumed(len(records))
            result = engine.process(events)
            for i, reason in enumerate(result.rejected):
                if reason is not None:
                    futures += self._bad(BadRecord(reason, coords[i], kept[i].key,
                                                   kept[i].value))
            for i in result.alert.nonzero()[0]:
                ev = events[i]
                expected, actual = result.explanation(int(i))
                alert = Alert.build(
                    coords=coords[i], stream=ev.stream, ts=ev.ts, score=result.score[i],
                    threshold=result.threshold[i],
                    severity=severity(result.score[i], self.engine_config.critical_threshold),
                    error=result.error[i], expected=expected, actual=actual,
                    model_version=engine.model_version)
                futures.append(self.producer.send(k.output_topic, key=ev.stream.encode(),
                                                  value=alert.to_json()))
                self.counters.alerts += 1
                self.telemetry.alert_published(alert.severity)
                self.counters.by_severity[alert.severity] = (
                    self.counters.by_severity.get(alert.severity, 0) + 1)
            self.counters.events += len(events)
            self.telemetry.scored(result.rejected.count(None))
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        self._deliver(futures)
        try:
            self.consumer.commit(offsets)
            self.telemetry.broker_answered()
        except CommitFailedError as exc:
            # The group rebalanced under us: the new owner re-processes from the last commit
            # and re-publishes the same alert ids, which consumers de-duplicate.
            log.warning("commit_failed_rebalance", error=str(exc),
                        partitions=sorted(_name(tp) for tp in offsets))
            for tp in offsets:
                self.engines.pop(tp, None)
        self.counters.batches += 1

    def _bad(self, bad: BadRecord) -> list[Any]:
        self.counters.bad_records += 1
        self.telemetry.bad_record(bad.reason)
        log.warning("bad_record", source=str(bad.coords), reason=bad.reason)
        dlq = self.settings.kafka.dlq_topic
        if not dlq:
            return []
        payload = {
            "error": bad.reason,
            "source": {"topic": bad.coords.topic, "partition": bad.coords.partition,
                       "offset": bad.coords.offset},
            "key": bad.key.decode("utf-8", "replace") if bad.key else None,
            "payload": (bad.value[:DLQ_PAYLOAD_BYTES].decode("utf-8", "replace")
                        if bad.value is not None else None),
            "payload_truncated": bad.value is not None and len(bad.value) > DLQ_PAYLOAD_BYTES,
        }
        return [self.producer.send(dlq, key=bad.key or None, value=orjson.dumps(payload))]

    def _deliver(self, futures: list[Any]) -> None:
        """Block until the broker acknowledged every record of the batch."""
        if not futures:
            return
        self.producer.flush(timeout=self.settings.kafka.request_timeout_ms / 1000)
        for fut in futures:
            try:
                fut.get(timeout=0)
            except Exception as exc:
                raise DeliveryError(f"alert not acknowledged by the broker: {exc}") from exc
