"""The pipelined checkpoint: offsets are committed only once every record before them is
acknowledged, at the position of the snapshot, never for a partition that left. (A fake
producer and consumer: the integration twins are tests/reliability, against the real broker.)"""

from __future__ import annotations

from kafka import TopicPartition

from detector.checkpoint import Checkpoint, PartitionWork
from detector.engine import Engine, EngineConfig, Event
from detector.io.changelog import ENGINE_KEY, stream_key

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)


class Ack:
    def __init__(self) -> None:
        self.is_done = False

    def get(self, timeout: float = 0) -> None:
        assert self.is_done


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

    def commit(self, offsets) -> None:
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
    refused, _ = checkpoint.advance(100)
    assert refused == [] and consumer.commits == [{0: 100, 1: 50}]
    assert parts[TP0].committed == 100 and not checkpoint.in_flight
    assert not parts[TP0].engine.dirty  # the next checkpoint writes only what changes after


def test_a_partition_that_left_is_never_committed() -> None:
    producer, consumer = Producer(), Consumer()
    checkpoint = Checkpoint(producer, consumer, "changelog", True, 5.0)
    checkpoint.start({TP0: work(1, 10), TP1: work(1, 20)})
    checkpoint.forget([TP1])
    assert checkpoint.complete() == []
    assert consumer.commits == [{0: 10}]


def test_evicted_streams_are_tombstoned_unless_back() -> None:
    producer, consumer = Producer(), Consumer()
    w = work(2, 10)
    w.engine.evicted += ["gone", "s0"]  # s0 was evicted and came back
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
