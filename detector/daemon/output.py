"""What the daemon sends out: alerts, and bad records to the log and the dead-letter topic.

Every send goes through the Outbox and its delivery future to the checkpoint, which waits for
them all before it commits the input offsets they came from. The log gets at most
BAD_RECORD_LOG_LINES bad-record lines per stats interval: a flood of bad input must not flood
the log (the metrics and the dead-letter topic still count and keep every one).
"""

from __future__ import annotations

from typing import Any

import structlog

from detector.alerts import Alert, alert_log_fields
from detector.daemon.outbox import Outbox
from detector.daemon.telemetry import Telemetry
from detector.engine import BatchResult, Event, Rejection
from detector.records import BadRecord, Coordinates
from detector.settings import KafkaSettings
from detector.state.checkpoint import Checkpoint

log = structlog.get_logger("detector.daemon.output")

BAD_RECORD_LOG_LINES = 100  # per stats interval


def coordinates(rec: Any) -> Coordinates:
    return Coordinates(rec.topic, rec.partition, rec.offset)


class Output:
    """Publishes alerts and dead letters; logs bad records, throttled."""

    def __init__(self, k: KafkaSettings, outbox: Outbox, checkpoint: Checkpoint,
                 telemetry: Telemetry) -> None:
        self.output_topic, self.dlq_topic = k.output_topic, k.dlq_topic
        self.outbox, self.checkpoint, self.telemetry = outbox, checkpoint, telemetry
        self.unlogged = 0  # bad records beyond BAD_RECORD_LOG_LINES in their stats interval
        self._logged = 0   # bad-record lines in this stats interval

    def alerts(self, result: BatchResult, events: list[Event], records: list[Any],
               model_version: str) -> None:
        """Publish the alert of every event `result` flags; `records[i]` is `events[i]`'s."""
        for i in result.alert.nonzero()[0]:
            ev = events[i]
            expected, actual = result.explanation(int(i))
            alert = Alert.build(
                coords=coordinates(records[i]), stream=ev.stream, ts=ev.ts,
                score=result.score[i], threshold=result.threshold[i],
                severity=str(result.severity[i]), error=result.error[i], expected=expected,
                actual=actual, ranked=result.ranked(int(i)), model_version=model_version)
            self._send(self.output_topic, ev.stream.encode(), alert.to_json())
            self.telemetry.alert_published(alert.severity)
            log.info("alert", **alert_log_fields(alert))

    def bad_record(self, reason: Rejection, rec: Any) -> None:
        """Count, log (unless throttled) and dead-letter (when a DLQ topic is set) a record."""
        bad = BadRecord(reason, coordinates(rec), rec.key, rec.value)
        self.telemetry.bad_record(reason.kind)
        if self._logged < BAD_RECORD_LOG_LINES:
            self._logged += 1
            log.warning("bad_record", source=str(bad.coords), kind=reason.kind,
                        reason=reason.detail)
        else:
            self.unlogged += 1
        if self.dlq_topic:
            self._send(self.dlq_topic, *bad.dead_letter())

    def next_interval(self) -> None:
        """A new stats interval: bad records are logged again."""
        self._logged = 0

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.checkpoint.track([self.outbox.send(topic, key=key, value=value)])
