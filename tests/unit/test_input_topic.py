"""The input topic's existence: waited for before subscribing, looked at again while idle."""

from __future__ import annotations

import threading

import structlog
from kafka.errors import KafkaConnectionError

from detector.daemon.input_topic import InputTopic
from detector.daemon.telemetry import Telemetry


class Cluster:
    """A consumer's metadata calls against a cluster whose topics the test changes."""

    def __init__(self, *answers: set[str] | Exception) -> None:
        self.answers = list(answers)
        self.asked = 0

    def topics(self) -> set[str]:
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_wait_reports_the_missing_topic_once_then_returns_its_partitions() -> None:
    cluster = Cluster(set(), set(), KafkaConnectionError("gone"), {"metrics"})
    telemetry = Telemetry(port=0)
    telemetry.assigned([])
    telemetry.broker_answered()
    watch = InputTopic(cluster, "metrics", telemetry, recheck_s=0.0)
    seen: list[list[str]] = []
    turns = []

    def turned() -> None:
        turns.append(1)
        seen.append(telemetry.probes.readiness()[1].get("reasons", []))

    structlog.reset_defaults()  # another test's configuration may filter INFO out
    with structlog.testing.capture_logs() as logs:
        assert watch.wait(threading.Event(), turned) == 3
    assert len(turns) == cluster.asked == 4
    assert seen[2] == ["input topic 'metrics' does not exist"]
    assert telemetry.probes.readiness()[0], "ready once the topic exists"
    assert [e["event"] for e in logs] == ["input_topic_missing", "topic_metadata_failed",
                                          "input_topic_found"]
    assert logs[0]["log_level"] == "error" and logs[0]["topic"] == "metrics"


def test_wait_stopped_while_the_topic_is_missing_returns_none() -> None:
    stop = threading.Event()
    watch = InputTopic(Cluster(set()), "metrics", Telemetry(port=0), recheck_s=0.0)
    assert watch.wait(stop, stop.set) is None


def test_recheck_looks_only_while_idle_and_at_most_every_recheck_s() -> None:
    cluster, clock, telemetry = Cluster({"metrics"}), Clock(), Telemetry(port=0)
    watch = InputTopic(cluster, "metrics", telemetry, recheck_s=10.0, clock=clock)
    watch.recheck(assigned=True)
    assert cluster.asked == 0, "partitions held: the topic is there"
    watch.recheck(assigned=False)
    clock.now = 9.0
    watch.recheck(assigned=False)
    assert cluster.asked == 1
    cluster.answers = [set()]  # deleted
    clock.now = 10.5
    watch.recheck(assigned=False)
    assert cluster.asked == 2 and watch.missing
    assert "input topic 'metrics' does not exist" in telemetry.probes.readiness()[1]["reasons"]
