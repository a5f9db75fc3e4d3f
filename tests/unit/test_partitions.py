"""What state an assigned partition starts from, and what happens when the broker does not
answer or the input's offsets go backwards. (A fake consumer, and no changelog: the
integration twins are tests/reliability/test_broker_loss.py and test_membership_churn.py.)"""

from __future__ import annotations

import pytest
import structlog
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from detector.daemon.partitions import Partitions
from detector.daemon.telemetry import Telemetry
from detector.engine import Engine, EngineConfig, Event
from detector.settings import Settings
from detector.state.checkpoint import Checkpoint, PartitionWork

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)
CONFIG = EngineConfig(hidden_size=4, window=2)


class Consumer:
    def __init__(self) -> None:
        self.commits: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int | None] = {}
        self.paused: set[TopicPartition] = set()
        self.unreachable = False

    def committed(self, tp, timeout_ms=None):
        if self.unreachable:
            raise KafkaTimeoutError("coordinator not available")
        return self.commits.get(tp)

    def seek(self, tp, offset) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, *tps) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def seek_to_end(self, *tps) -> None:
        raise AssertionError("the default reset policy is earliest")

    def position(self, tp, timeout_ms=None):
        return self.positions.get(tp)

    def pause(self, *tps) -> None:
        self.paused.update(tps)

    def resume(self, *tps) -> None:
        self.paused.difference_update(tps)

    def partitions_for_topic(self, topic):
        return {0, 1}


class Outbox:
    def __init__(self) -> None:
        self.rebuilt = 0

    def rebuild(self) -> None:
        self.rebuilt += 1


@pytest.fixture
def consumer() -> Consumer:
    return Consumer()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def partitions(consumer: Consumer, outbox: Outbox) -> Partitions:
    settings = Settings(state={"checkpoints": False})
    checkpoint = Checkpoint(outbox, consumer, "changelog", False, 1.0)
    return Partitions(settings, CONFIG, consumer, checkpoint, outbox,
                      Telemetry(port=0))


def scored(position: int, committed: int) -> PartitionWork:
    engine = Engine(CONFIG)
    engine.process([Event("s", 0.0, {"x": 1.0})])
    return PartitionWork(engine, position, committed)


def test_a_new_partition_starts_at_its_committed_offset(partitions, consumer) -> None:
    consumer.commits[TP0] = 40
    assert partitions.assign({TP0, TP1}) == {TP0, TP1}
    assert partitions.works[TP0].position == 40 and consumer.positions[TP0] == 40
    assert partitions.works[TP1].position == 0 and consumer.positions[TP1] == 0
    assert not consumer.paused and not partitions.pending


def test_a_partition_kept_through_a_rebalance_keeps_its_engine(partitions, consumer) -> None:
    kept = partitions.works[TP0] = scored(120, 100)
    consumer.commits[TP0] = 100
    partitions.assign({TP0})
    assert partitions.works[TP0] is kept and consumer.positions[TP0] == 120


def test_a_partition_another_member_committed_past_is_restored(partitions, consumer) -> None:
    kept = partitions.works[TP0] = scored(120, 100)
    consumer.commits[TP0] = 150
    partitions.assign({TP0})
    assert partitions.works[TP0] is not kept and partitions.works[TP0].position == 150


def test_offsets_that_went_backwards_start_the_partition_afresh_with_a_marker(
        partitions, consumer) -> None:
    partitions.works[TP0] = scored(1_000, 1_000)
    with structlog.testing.capture_logs() as logs:
        partitions.assign({TP0})  # the broker lost the group's offsets: none committed
    work = partitions.works[TP0]
    assert work.engine.streams == 0 and work.position == 0 and work.reset_from == 0
    assert consumer.positions[TP0] == 0
    [error] = [e for e in logs if e["event"] == "input_offsets_went_backwards"]
    assert error["log_level"] == "error" and error["partition"] == "in[0]"
    assert error["last_commit"] == 1_000 and error["committed"] is None


def test_a_partition_waits_paused_while_the_coordinator_does_not_answer(
        partitions, consumer, monkeypatch) -> None:
    consumer.unreachable = True
    assert partitions.assign({TP0}) == set()
    assert TP0 in partitions.pending and TP0 in consumer.paused and not partitions.works
    consumer.unreachable = False
    assert partitions.restore_pending() == set(), "retried only after a pause"
    monkeypatch.setattr(partitions, "_retry_at", 0.0)
    assert partitions.restore_pending() == {TP0}
    assert TP0 in partitions.works and not consumer.paused


def test_a_position_below_the_partitions_starts_it_over_there(partitions, consumer) -> None:
    partitions.works[TP0] = scored(500, 400)
    consumer.positions[TP0] = 500
    partitions.check_positions()
    assert partitions.works[TP0].position == 500
    consumer.positions[TP0] = 0  # the fetch fell out of range: the log is shorter now
    with structlog.testing.capture_logs() as logs:
        partitions.check_positions()
    work = partitions.works[TP0]
    assert work.position == 0 and work.reset_from == 0 and work.engine.streams == 0
    assert [e["now"] for e in logs if e["event"] == "input_offsets_went_backwards"] == [0]


def test_a_failed_delivery_redoes_every_partition_from_its_commit(
        partitions, consumer, outbox) -> None:
    consumer.commits = {TP0: 100, TP1: 50}
    partitions.assign({TP0, TP1})
    partitions.works[TP0].position = 180
    partitions.works[TP1].position = 90
    partitions.redo("OutOfOrderSequenceNumberError")
    assert outbox.rebuilt == 1
    assert {tp: w.position for tp, w in partitions.works.items()} == {TP0: 100, TP1: 50}
    assert consumer.positions == {TP0: 100, TP1: 50}
