"""Fixtures of the reliability tests: one seeded input topic and its uninterrupted run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.kafka_tools import (
    daemon_env,
    log_lines,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.reliability.state_tools import Scenario, seed_scenario


def reliability_env(scenario: Scenario, group: str, **extra: str) -> dict[str, str]:
    """A daemon of `group` on the scenario's topic: small batches and frequent checkpoints,
    so faults land between checkpoints as well as inside them."""
    return daemon_env(scenario.bootstrap, scenario.topic, f"{group}-alerts", group,
                      DETECTOR_KAFKA_CREATE_TOPICS="true",
                      DETECTOR_KAFKA_MAX_POLL_RECORDS="250",
                      DETECTOR_SERVICE_COMMIT_INTERVAL_S="0.25", **extra)


def wait_restored(proc, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(line.get("event") == "partition_restored" for line in log_lines(log)):
            return
        assert proc.poll() is None, f"daemon exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("daemon never restored its partitions")


def run_to_end(scenario: Scenario, env: dict[str, str], log: Path) -> None:
    proc = start_daemon(env, log)
    try:
        # Up and restored first: when earlier runs committed everything already, the commits
        # are there at once, and a daemon stopped while it still starts dies of the signal.
        wait_restored(proc, log)
        wait_committed(scenario.bootstrap, env["DETECTOR_KAFKA_GROUP_ID"], scenario.total,
                       timeout_s=240, proc=proc)
    finally:
        assert stop_daemon(proc) == 0


@pytest.fixture(scope="session")
def scenario(bootstrap_servers: str) -> Scenario:
    """60,000 events over 100 streams, 4 partitions, with injected incidents: enough that ten
    kill -9 incarnations of the daemon, each given time for a checkpoint, end mid-stream (30,000
    were used up by the tenth on a machine twice as fast as the one they were sized on)."""
    return seed_scenario(bootstrap_servers, "reliability", streams=100, steps=600, seed=5)


@pytest.fixture(scope="session")
def reference(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The group of one uninterrupted run over the whole scenario."""
    group = f"{scenario.topic}-ref"
    run_to_end(scenario, reliability_env(scenario, group),
               tmp_path_factory.mktemp("reference") / "daemon.log")
    return group
