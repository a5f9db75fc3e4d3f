"""The daemon's producer: every send returns a future, broker trouble included, and a producer
whose deliveries failed is replaced.

kafka-python's `send` raises when it cannot even queue a record (no metadata for the topic
within `max_block_ms`, a full buffer): the daemon treats that like any other failed delivery,
through the future, instead of crashing. After a failed delivery the producer is rebuilt: an
idempotent producer's state (producer id, sequence numbers) may no longer match the broker's,
for example after the broker lost its log, and a new producer starts from a clean slate.
"""

from __future__ import annotations

from typing import Any

import structlog
from kafka.errors import KafkaError
from kafka.future import Future

from detector.errors import BrokerUnavailableError
from detector.kafka_clients import build_producer
from detector.settings import KafkaSettings

log = structlog.get_logger("detector.outbox")


def failed_future(exc: Exception) -> Future:
    future = Future()
    future.failure(exc)
    return future


class Outbox:
    """One producer for alerts, dead letters and state records; rebuilt after a failure."""

    def __init__(self, k: KafkaSettings, **options: Any) -> None:
        self._settings, self._options = k, options
        self.producer: Any = build_producer(k, **options)  # at start-up a failure is fatal

    def send(self, topic: str, *, key: bytes | None, value: bytes | None,
             partition: int | None = None, headers: list[tuple[str, bytes]] | None = None
             ) -> Any:
        try:
            if self.producer is None:  # rebuilt lazily: the broker may still be away
                self.producer = build_producer(self._settings, **self._options)
            return self.producer.send(topic, key=key, value=value, partition=partition,
                                      headers=headers)
        except (KafkaError, BrokerUnavailableError) as exc:
            return failed_future(exc)

    def flush(self, timeout: float) -> None:
        if self.producer is None:
            return
        try:
            self.producer.flush(timeout=timeout)
        except KafkaError as exc:  # the futures say which records were not delivered
            log.warning("producer_flush_incomplete", error=f"{type(exc).__name__}: {exc}")

    def rebuild(self) -> None:
        """Drop the producer and whatever it still holds (those records are sent again by
        re-processing); the next send starts a new one."""
        old, self.producer = self.producer, None
        if old is None:
            return
        try:
            old.close(timeout=0)
        except Exception as exc:  # noqa: BLE001 - a broken producer may fail to close
            log.warning("producer_close_failed", error=f"{type(exc).__name__}: {exc}")

    def close(self, timeout: float) -> None:
        if self.producer is not None:
            self.flush(timeout)
            self.producer.close(timeout=timeout)
