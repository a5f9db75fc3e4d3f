"""Whether the input topic exists, asked of the cluster in a way that never creates it.

A consumer that subscribes to a missing topic on a cluster without topic auto-creation is
assigned nothing, which looks exactly like a member with more replicas than partitions: idle
and ready. So the daemon subscribes only once the topic exists (waiting, logging the wait and
reporting it in /readyz), and while it holds no partition it looks again every few seconds,
which catches a topic deleted later. The question is a metadata request for every topic, which
no broker answers by creating one (a request naming the topic may, where auto-creation is on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from kafka.errors import KafkaError

from detector.daemon.telemetry import Telemetry

log = structlog.get_logger("detector.daemon.input_topic")

RECHECK_S = 10.0


class InputTopic:
    """The input topic's existence, as the daemon last saw it."""

    def __init__(self, consumer: Any, topic: str, telemetry: Telemetry, *,
                 recheck_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer, self.topic, self.telemetry = consumer, topic, telemetry
        self.recheck_s, self._clock = recheck_s, clock
        self._checked_at = -float("inf")
        self.missing = False

    def partitions(self) -> int | None:
        """The topic's partition count, 0 when it does not exist, None when the cluster did
        not answer."""
        try:
            if self.topic not in self.consumer.topics():
                return 0
            return len(self.consumer.partitions_for_topic(self.topic))
        except KafkaError as exc:
            log.warning("topic_metadata_failed", topic=self.topic, error=str(exc))
            return None

    def wait(self, stop: threading.Event, turned: Callable[[], None]) -> int | None:
        """Until the topic exists: its partition count; None when stopped first. `turned` is
        called on every try, so liveness reports a waiting daemon as alive."""
        while not stop.is_set():
            turned()
            count = self.partitions()
            if count:
                self._note(missing=False)
                return count
            if count == 0:
                self._note(missing=True)
            stop.wait(self.recheck_s)
        return None

    def recheck(self, assigned: bool) -> None:
        """From the poll loop: while nothing is assigned, look again every `recheck_s`."""
        if assigned and not self.missing:
            return
        now = self._clock()
        if now - self._checked_at < self.recheck_s:
            return
        self._checked_at = now
        count = self.partitions()
        if count is not None:
            self._note(missing=count == 0)

    def _note(self, *, missing: bool) -> None:
        if missing and not self.missing:
            log.error("input_topic_missing", topic=self.topic,
                      detail="the cluster has no such topic: create it, or correct "
                             "DETECTOR_KAFKA_INPUT_TOPIC; waiting for it")
        elif self.missing and not missing:
            log.info("input_topic_found", topic=self.topic)
        self.missing = missing
        self.telemetry.input_topic_missing(self.topic if missing else None)
