"""Kill -9 chaos: a daemon killed at random points and restarted loses and changes nothing.

One topic (20,000 events, 100 streams, injected incidents) is processed twice: once without
interruption, once by a daemon killed with SIGKILL at random moments (10 times here; set
CHAOS_KILLS for more) and restarted each time. After de-duplication by alert_id both runs
published the same alerts, and the state in the changelog equals the uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.integration.kafka_tools import (
    committed,
    daemon_env,
    log_lines,
    read_json,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.reliability.state_tools import (
    Scenario,
    assert_same_state,
    changelog_state,
    seed_scenario,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

KILLS = int(os.environ.get("CHAOS_KILLS", "10"))


@pytest.fixture(scope="module")
def scenario(bootstrap_servers: str) -> Scenario:
    return seed_scenario(bootstrap_servers, "chaos", streams=100, steps=200, seed=5)


def chaos_env(scenario: Scenario, group: str, **extra: str) -> dict[str, str]:
    return daemon_env(scenario.bootstrap, scenario.topic, f"{group}-alerts", group,
                      DETECTOR_KAFKA_CREATE_TOPICS="true",
                      DETECTOR_KAFKA_MAX_POLL_RECORDS="250",
                      DETECTOR_SERVICE_COMMIT_INTERVAL_S="0.25", **extra)


def run_to_end(scenario: Scenario, env: dict[str, str], log: Path) -> None:
    proc = start_daemon(env, log)
    try:
        wait_committed(scenario.bootstrap, env["DETECTOR_KAFKA_GROUP_ID"], scenario.total,
                       timeout_s=240, proc=proc)
    finally:
        assert stop_daemon(proc) == 0


def wait_restored(proc, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(line.get("event") == "partition_restored" for line in log_lines(log)):
            return
        assert proc.poll() is None, f"daemon exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("daemon never restored its partitions")


def test_kill9_at_random_points_loses_and_changes_nothing(scenario: Scenario,
                                                        tmp_path: Path) -> None:
    reference = f"{scenario.topic}-ref"
    run_to_end(scenario, chaos_env(scenario, reference), tmp_path / "reference.log")

    group = f"{scenario.topic}-chaos"
    # Static membership: a restarted member takes its partitions back at once, as a pod of
    # a StatefulSet would, instead of waiting for the session timeout of the dead one.
    env = chaos_env(scenario, group, DETECTOR_KAFKA_GROUP_INSTANCE_ID="chaos-0")
    rng = random.Random(20261125)
    kills_mid_stream, restores = 0, []
    for kill in range(KILLS):
        log = tmp_path / f"chaos-{kill}.log"
        proc = start_daemon(env, log)
        wait_restored(proc, log)
        time.sleep(rng.uniform(0.05, 0.6))
        done = sum(committed(scenario.bootstrap, group).values())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills_mid_stream += done < scenario.total
        restores += [line for line in log_lines(log) if line.get("event") == "partition_restored"]
    run_to_end(scenario, env, tmp_path / "chaos-final.log")
    assert kills_mid_stream == KILLS, "every kill should land before the input is done"
    assert any(r["streams"] > 0 for r in restores), "no restart restored any state"

    expected = read_json(scenario.bootstrap, f"{reference}-alerts")
    published = read_json(scenario.bootstrap, f"{group}-alerts")
    assert scenario.plan_incident_streams() <= {a["stream"] for a in expected}
    assert {a["alert_id"] for a in published} == {a["alert_id"] for a in expected}
    first = {}
    for alert in published:
        first.setdefault(alert["alert_id"], alert)
    for alert in expected:  # a re-published alert says what the first one said
        assert first[alert["alert_id"]]["score"] == pytest.approx(alert["score"], abs=1e-6)
    print(f"\nkill -9 chaos: {KILLS} kills survived, {len(published)} alerts published, "
          f"{len(published) - len(first)} duplicates removed by alert_id, "
          f"{len(expected)} expected, 0 lost")

    assert_same_state(changelog_state(scenario.bootstrap, group),
                      changelog_state(scenario.bootstrap, reference))
