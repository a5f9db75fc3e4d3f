"""Losing the broker: readiness tells the truth while it is away, and a broker that comes back
without its log (the embedded broker keeps everything in memory, as a topic deleted and created
again would look on Apache Kafka) gets every new record scored.

Each test has a broker of its own, restarted on the same port, so the session's shared broker
is never touched.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.sim.broker import EmbeddedBroker, free_port
from detector.sim.produce import encode_event
from detector.sim.traffic import TrafficGenerator, plan_traffic
from tests.integration.kafka_tools import (
    committed,
    create_topics,
    daemon_env,
    log_lines,
    produce,
    read_json,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.reliability.state_tools import assert_same_state, changelog_state

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SESSION_TIMEOUT_S = 6.0
PARTITIONS = 4


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    own = EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log").start()
    try:
        yield own
    finally:
        own.stop()


def probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_status(port: int, path: str, status: int, timeout_s: float, proc) -> float:
    """Seconds until `path` answers `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert proc.poll() is None, f"daemon exited with {proc.returncode}"
        try:
            if probe(port, path) == status:
                return time.monotonic() - started
        except OSError:
            pass  # the HTTP server is not up yet
        time.sleep(0.2)
    raise AssertionError(f"{path} did not answer {status} within {timeout_s}s")


def events(streams: int, steps: int, seed: int) -> list[tuple[bytes, bytes]]:
    plan = plan_traffic(streams, seed=seed, n_steps=steps, n_incidents=3,
                        incident_kinds=("spike", "outage", "level_shift"),
                        earliest_index=steps // 2, latest_index=steps - 15)
    generator = TrafficGenerator(plan, seed=seed)
    return [(e["stream"].encode(), encode_event(e))
            for _ in range(steps) for e in generator.step()]


def test_readiness_follows_the_broker_of_an_idle_daemon(broker: EmbeddedBroker,
                                                        tmp_path: Path) -> None:
    topic = f"idle-{time.time_ns()}"
    create_topics(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    port = free_port()
    log = tmp_path / "daemon.log"
    proc = start_daemon(daemon_env(broker.bootstrap_servers, topic, f"{topic}-alerts",
                                   f"{topic}-g", DETECTOR_SERVICE_METRICS_PORT=str(port),
                                   DETECTOR_SERVICE_METRICS_BIND="127.0.0.1"), log)
    try:
        wait_status(port, "/readyz", 200, 60, proc)
        time.sleep(2 * SESSION_TIMEOUT_S)  # idle, ready all along: heartbeats answer
        assert probe(port, "/readyz") == 200

        broker.stop()
        lost_after = wait_status(port, "/readyz", 503, SESSION_TIMEOUT_S + 2, proc)
        down_until = time.monotonic() + 2 * SESSION_TIMEOUT_S
        while time.monotonic() < down_until:  # not ready for as long as the broker is away
            assert probe(port, "/readyz") == 503
            assert probe(port, "/healthz") == 200, "the loop keeps turning: alive"
            time.sleep(0.25)

        broker.start()
        create_topics(broker.bootstrap_servers, topic, partitions=PARTITIONS)
        back_after = wait_status(port, "/readyz", 200, 90, proc)
        assert proc.poll() is None
    finally:
        assert stop_daemon(proc) == 0
    lines = log_lines(log)
    lost = [line for line in lines if line["event"] == "broker_unreachable"]
    back = [line for line in lines if line["event"] == "broker_reachable_again"]
    assert len(lost) == 1 and len(back) == 1, "loss and return are each logged once"
    assert lost[0]["level"] == "warning" and lost[0]["broker"] == broker.bootstrap_servers
    print(f"\nreadiness: 503 {lost_after:.1f}s after the broker died (session timeout "
          f"{SESSION_TIMEOUT_S:.0f}s), 503 throughout {2 * SESSION_TIMEOUT_S:.0f}s down, "
          f"200 again {back_after:.1f}s after it came back")


def test_a_broker_that_lost_its_log_gets_every_new_record_scored(broker: EmbeddedBroker,
                                                                 tmp_path: Path) -> None:
    bootstrap = broker.bootstrap_servers
    topic = f"lost-{time.time_ns()}"
    group = f"{topic}-g"
    create_topics(bootstrap, topic, partitions=PARTITIONS)
    env = daemon_env(bootstrap, topic, f"{group}-alerts", group,
                     DETECTOR_KAFKA_CREATE_TOPICS="true", DETECTOR_KAFKA_MAX_POLL_RECORDS="100",
                     DETECTOR_SERVICE_COMMIT_INTERVAL_S="1", DETECTOR_ALERT_WARMUP_EVENTS="20")
    before, after = events(10, 100, seed=3), events(8, 100, seed=4)
    log = tmp_path / "daemon.log"
    proc = start_daemon(env, log)
    try:
        produce(bootstrap, topic, before)
        wait_committed(bootstrap, group, len(before), timeout_s=120, proc=proc)
        old_commits = committed(bootstrap, group)

        broker.stop()  # everything is lost: topics, records, the group and its offsets
        time.sleep(2)
        broker.start()
        create_topics(bootstrap, topic, partitions=PARTITIONS)
        feeder = threading.Thread(target=produce, args=(bootstrap, topic, after))
        feeder.start()
        feeder.join()
        wait_committed(bootstrap, group, len(after), timeout_s=180, proc=proc)
        assert sum(committed(bootstrap, group).values()) == len(after), "scored to the end"
        assert proc.poll() is None, "the daemon survived the loss"
    finally:
        assert stop_daemon(proc) == 0
    backwards = [line for line in log_lines(log)
                 if line["event"] == "input_offsets_went_backwards"]
    assert backwards and all(line["level"] == "error" for line in backwards)
    named = {line["partition"] for line in backwards}
    assert named <= {f"{topic}[{p}]" for p in range(PARTITIONS)}
    for line in backwards:  # both offsets named
        assert ("last_commit" in line and "committed" in line) or (
            "position" in line and "now" in line)

    # Scored afresh from the first record of the new log: the same alerts (same ids) and the
    # same state as a new group reading the new log from the start.
    reference = f"{topic}-ref"
    ref_env = {**env, "DETECTOR_KAFKA_GROUP_ID": reference,
               "DETECTOR_KAFKA_OUTPUT_TOPIC": f"{reference}-alerts"}
    ref = start_daemon(ref_env, tmp_path / "reference.log")
    try:
        wait_committed(bootstrap, reference, len(after), timeout_s=120, proc=ref)
    finally:
        assert stop_daemon(ref) == 0
    expected = read_json(bootstrap, f"{reference}-alerts")
    published = read_json(bootstrap, f"{group}-alerts")
    assert expected, "the new log's incidents raise alerts"
    assert {a["alert_id"] for a in published} == {a["alert_id"] for a in expected}
    assert_same_state(changelog_state(bootstrap, group), changelog_state(bootstrap, reference))
    print(f"\nlog loss: {len(before)} events scored and committed ({old_commits}), broker "
          f"restarted empty, {len(after)} new events: all scored and committed, "
          f"{len(published)} alerts ({len({a['alert_id'] for a in published})} distinct) = the "
          f"fresh run's {len(expected)}; partitions reset: {sorted(named)}")
