"""The pipelined checkpoint: offsets are committed only once every record before them is
acknowledged, at the position of the snapshot, never for a partition that left. (A fake
producer and consumer: the integration twins are tests/reliability, against the real broker.)"""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import (
    CommitFailedError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupAuthorizationFailedError,
    IllegalGenerationError,
    KafkaTimeoutError,
    NotCoordinatorError,
    OutOfOrderSequenceNumberError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from detector.daemon.outbox import failed_future
from detector.engine import Engine, EngineConfig, Event
from detector.errors import SettingsError
from detector.state.changelog import ENGINE_KEY, RESET_KEY, stream_key
from detector.state.checkpoint import Checkpoint, PartitionWork

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)


class Ack:
    def __init__(self) -> None:
        self.is_done = False
        self.error: Exception | None = None

    def failed(self) -> bool:  # kafka.future.Future's interface
        assert self.is_done
        return self.error is not None

    @property
    def exception(self) -> Exception | None:
        return self.error


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.acks: list[Ack] = []

    def send(self, topic, key=None, value=None, partition=None, headers=None) -> Ack:
        self.sent.append((partition, key, value is None, dict(headers)["source-offset"]))
        self.acks.append(Ack())
        return self.acks[-1]

    def ack_all(self) -> None:
        for ack in self.acks:
            ack.is_done = True

    def flush(self, timeout: float) -> None:
        self.ack_all()


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict] = []
        self.fail_with: Exception | None = None

    def commit(self, offsets, timeout_ms=None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.commits.append({tp.partition: o.offset for tp, o in offsets.items()})


def work(streams: int, offset: int) -> PartitionWork:
    engine = Engine(EngineConfig(hidden_size=4, window=2))
    engine.process([Event(f"s{i}", 0.0, {"x": 1.0}) for i in range(streams)])
    return PartitionWork(engine, offset, 0)


def test_offsets_are_committed_at_the_snapshot_once_everything_is_acknowledged() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    alert = Ack()
    checkpoint.track([alert])
    parts = {TP0: work(3, 100), TP1: work(2, 50)}
    checkpoint.start(parts)
    parts[TP0].position = 130  # scoring goes on while the checkpoint is in flight
    assert checkpoint.advance(2) is None and len(producer.sent) == 2
    assert checkpoint.advance(100) is None  # all sent, none acknowledged
    assert len(producer.sent) == 3 + 1 + 2 + 1  # streams and the model of both partitions
    assert {(p, off) for p, _, _, off in producer.sent} == {(0, b"100"), (1, b"50")}
    assert sum(key == ENGINE_KEY for _, key, _, _ in producer.sent) == 2
    producer.ack_all()
    assert checkpoint.advance(100) is None, "the alert is not acknowledged yet"
    alert.is_done = True
    outcome = checkpoint.advance(100)
    assert outcome.committed and not outcome.refused and outcome.undelivered is None
    assert consumer.commits == [{0: 100, 1: 50}]
    assert parts[TP0].committed == 100 and not checkpoint.in_flight
    # The next one writes only what changes after this one.
    assert all(not s.size for s in parts[TP0].engine.take_changes()[0].values())


def test_a_partition_that_left_is_never_committed() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    checkpoint.start({TP0: work(1, 10), TP1: work(1, 20)})
    checkpoint.forget([TP1])
    assert checkpoint.complete().committed
    assert consumer.commits == [{0: 10}]


def test_evicted_streams_are_tombstoned_unless_back() -> None:
    producer, consumer = Producer(), Consumer()
    w = work(2, 10)
    w.engine.lanes[4].changes.evicted += ["gone", "s0"]  # s0 was evicted and came back
    Checkpoint(producer, consumer, "changelog", True, 5.0).commit({TP0: w})
    tombstones = [key for _, key, tomb, _ in producer.sent if tomb]
    assert tombstones == [stream_key("gone")]


def test_a_spread_checkpoint_sends_on_its_schedule_and_commits_only_when_all_is_sent() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0, spread_s=100.0)
    checkpoint.start({TP0: work(9, 10)})  # 9 streams + the model: 10 records
    assert checkpoint.due() <= 1, "nothing is due at the start of the schedule"
    assert checkpoint.advance(0) is None and consumer.commits == []
    checkpoint._flight.started -= 49.99  # half the schedule has passed
    assert checkpoint.due() == 5
    checkpoint.advance(checkpoint.due())
    assert len(producer.sent) == 5 and checkpoint.due() == 0
    producer.ack_all()
    assert checkpoint.advance(0) is None, "acknowledged, but half of the state is unsent"
    checkpoint._flight.started -= 49.99
    assert checkpoint.due() == 5
    checkpoint.advance(5)
    producer.ack_all()
    assert checkpoint.advance(0) is not None and consumer.commits == [{0: 10}]


@pytest.mark.parametrize("error", [
    RebalanceInProgressError(), CommitFailedError(), IllegalGenerationError(),
    UnknownMemberIdError(), FencedInstanceIdError(), KafkaTimeoutError(),
    CoordinatorNotAvailableError(), NotCoordinatorError()])
def test_a_commit_the_group_refuses_is_retried_by_the_next_checkpoint(error) -> None:
    producer, consumer = Producer(), Consumer()
    consumer.fail_with = error
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    parts = {TP0: work(2, 10)}
    outcome = checkpoint.commit(parts)
    assert not outcome.committed and outcome.refused == (TP0,)
    assert parts[TP0].committed == 0 and parts[TP0].moved, "the work is not taken as done"
    consumer.fail_with = None
    parts[TP0].position = 15
    assert checkpoint.commit(parts).committed and consumer.commits == [{0: 15}]


def test_a_commit_the_cluster_forbids_is_a_settings_error() -> None:
    consumer = Consumer()
    consumer.fail_with = GroupAuthorizationFailedError()
    with pytest.raises(SettingsError, match="DETECTOR_KAFKA_GROUP_ID"):
        Checkpoint(Producer(), consumer, "changelog", True, 5.0).commit({TP0: work(1, 10)})


def test_a_record_the_broker_did_not_acknowledge_commits_nothing() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    alert = Ack()
    checkpoint.track([alert])
    checkpoint.start({TP0: work(2, 10)})
    assert checkpoint.advance(100) is None
    alert.is_done, alert.error = True, OutOfOrderSequenceNumberError()
    producer.ack_all()
    outcome = checkpoint.advance(100)
    assert "OutOfOrderSequenceNumberError" in outcome.undelivered
    assert not outcome.committed and consumer.commits == [] and not checkpoint.in_flight


def test_a_send_that_fails_at_once_stops_the_checkpoint() -> None:
    class Refusing(Producer):
        def send(self, topic, key=None, value=None, partition=None, headers=None):
            super().send(topic, key, value, partition, headers)
            return failed_future(KafkaTimeoutError("no metadata"))

    producer, consumer = Refusing(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    checkpoint.start({TP0: work(5, 10)})
    outcome = checkpoint.advance(100)
    assert outcome is not None and "KafkaTimeoutError" in outcome.undelivered
    assert len(producer.sent) == 1 and consumer.commits == []


def test_after_a_reset_the_marker_comes_first_then_the_whole_state_until_committed() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    w = work(3, 10)
    w.reset_from = 0
    w.engine.take_changes()  # nothing changed since the last snapshot: all of it is written
    consumer.fail_with = RebalanceInProgressError()
    checkpoint.commit({TP0: w})
    keys = [key for _, key, _, _ in producer.sent]
    assert keys[0] == RESET_KEY and len(keys) == 1 + 3 + 1
    assert w.reset_from == 0, "kept until a checkpoint with the marker is committed"
    consumer.fail_with = None
    w.position = 12
    producer.sent.clear()
    checkpoint.commit({TP0: w})
    assert [key for _, key, _, _ in producer.sent][0] == RESET_KEY
    assert w.reset_from is None and consumer.commits == [{0: 12}]
