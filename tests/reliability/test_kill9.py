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

from tests.integration.kafka_tools import committed, log_lines, start_daemon
from tests.reliability.conftest import reliability_env, run_to_end, wait_restored
from tests.reliability.state_tools import Scenario, assert_same_run

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

KILLS = int(os.environ.get("CHAOS_KILLS", "10"))


def wait_progress(proc, bootstrap: str, group: str, since: int, timeout_s: float = 60.0) -> None:
    """Until the group has committed past `since`: this incarnation checkpointed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(committed(bootstrap, group).values()) > since:
            return
        assert proc.poll() is None, f"daemon exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("daemon committed nothing")


def test_kill9_at_random_points_loses_and_changes_nothing(scenario: Scenario, reference: str,
                                                        tmp_path: Path) -> None:
    group = f"{scenario.topic}-chaos"
    # Static membership: a restarted member takes its partitions back at once, as a pod of
    # a StatefulSet would, instead of waiting for the session timeout of the dead one.
    env = reliability_env(scenario, group, DETECTOR_KAFKA_GROUP_INSTANCE_ID="chaos-0")
    rng = random.Random(20261125)
    kills_mid_stream, restores = 0, []
    for kill in range(KILLS):
        log = tmp_path / f"chaos-{kill}.log"
        before = sum(committed(scenario.bootstrap, group).values())
        proc = start_daemon(env, log)
        wait_restored(proc, log)
        if kill % 2:  # every other kill after a checkpoint, however slow the machine, so
            # later incarnations restore real state; the others at any point after start-up
            wait_progress(proc, scenario.bootstrap, group, before)
        # A random moment, unless this incarnation is already past its share of the input:
        # then at once, so that on a fast machine too every kill lands mid-stream.
        share = scenario.total * (kill + 1) / (KILLS + 1)
        pause = rng.uniform(0.05, 0.6)
        time.sleep(0.0 if sum(committed(scenario.bootstrap, group).values()) > share else pause)
        done = sum(committed(scenario.bootstrap, group).values())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills_mid_stream += done < scenario.total
        restores += [line for line in log_lines(log) if line.get("event") == "partition_restored"]
    run_to_end(scenario, env, tmp_path / "chaos-final.log")
    assert kills_mid_stream == KILLS, "every kill should land before the input is done"
    assert any(r["streams"] > 0 for r in restores), "no restart restored any state"

    published, duplicates = assert_same_run(scenario, group, reference)
    print(f"\nkill -9 chaos: {KILLS} kills survived, {published} alerts published, "
          f"{duplicates} duplicates removed by alert_id, 0 lost, state equal")
