"""The group's assignment of input partitions to this member, as the rebalance listener hears it.

kafka-python 3 runs rebalance listeners on its I/O thread, where no blocking client call is
allowed: the listener only notes the assignment, and the loop takes it up (Partitions.assign)
after poll() returns.
"""

from __future__ import annotations

import threading

import structlog
from kafka import ConsumerRebalanceListener, TopicPartition

from detector.daemon.partitions import name
from detector.daemon.telemetry import Telemetry

log = structlog.get_logger("detector.daemon.assignment")


class RebalanceListener(ConsumerRebalanceListener):
    """Notes each assignment for the loop to take; logs and counts what came and went."""

    def __init__(self, telemetry: Telemetry, max_partitions: int = 0) -> None:
        self.telemetry = telemetry
        self.max_partitions = max_partitions
        self._lock = threading.Lock()
        self._assigned: set[TopicPartition] | None = None
        self.assignments = 0  # how many assignments the group has handed out to this member

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.telemetry.revoked(tp.partition for tp in revoked)
        if revoked:
            log.info("partitions_revoked", partitions=sorted(name(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.telemetry.assigned(tp.partition for tp in assigned)
        log.info("partitions_assigned", partitions=sorted(name(tp) for tp in assigned))
        if 0 < self.max_partitions < len(assigned):
            log.warning("partitions_over_memory_budget", partitions=len(assigned),
                        max_partitions=self.max_partitions,
                        detail="memory was checked for DETECTOR_STATE_MAX_PARTITIONS only")
        with self._lock:
            self._assigned = set(assigned)
            self.assignments += 1

    def take(self) -> set[TopicPartition] | None:
        """The newest assignment since the last call, or None when there was none."""
        with self._lock:
            assigned, self._assigned = self._assigned, None
        return assigned
