"""The Kafka-style flags of `detector run` and `detector config --check` against the real
broker: the flags, not the DETECTOR_* variables they override, decide where the daemon reads,
commits and publishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_tools import (
    REPO,
    create_topics,
    daemon_env,
    log_lines,
    produce,
    read_json,
    start_daemon,
    stop_daemon,
    wait_committed,
)

pytestmark = pytest.mark.integration

T0 = 1_772_409_600.0
EVENTS = 80
SPIKE = 70


def events() -> list[tuple[bytes, bytes]]:
    """One stream, steady with a little wobble, then a value far beyond its range."""
    out = []
    for i in range(EVENTS):
        value = 1_000.0 if i == SPIKE else 10.0 + (i % 5) * 0.1
        out.append((b"edge-01/eth0", orjson.dumps({"ts": T0 + 60 * i, "value": value})))
    return out


def test_run_flags_override_the_variables_they_name(bootstrap_servers: str, unique_name: str,
                                                    tmp_path: Path) -> None:
    source, sink, group = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-g"
    create_topics(bootstrap_servers, source, sink, partitions=1)
    produce(bootstrap_servers, source, events())
    # The variables point elsewhere; an unreachable cluster would fail the run.
    env = daemon_env("127.0.0.1:9", f"{unique_name}-wrong-in", f"{unique_name}-wrong-out",
                     f"{unique_name}-wrong-g", DETECTOR_LOG_LEVEL="INFO",
                     DETECTOR_ALERT_WARMUP_EVENTS="20", DETECTOR_ALERT_SPATIAL_MARGIN="0.05",
                     DETECTOR_SERVICE_COMMIT_INTERVAL_S="1")
    log = tmp_path / "daemon.log"
    proc = start_daemon(env, log, "--bootstrap-server", bootstrap_servers, "--group", group,
                        "--input-topic", source, "--output-topic", sink, "--log-level", "debug")
    try:
        wait_committed(bootstrap_servers, group, EVENTS, timeout_s=120, proc=proc)
    finally:
        assert stop_daemon(proc) == 0, log.read_text()[-3000:]
    alerts = {a["source"]["offset"]: a for a in read_json(bootstrap_servers, sink)}
    assert SPIKE in alerts, sorted(alerts)
    assert alerts[SPIKE]["source"]["topic"] == source
    assert alerts[SPIKE]["metrics"][0]["name"] == "value"
    # Searched as text: at DEBUG, kafka-python's threads log to the same stderr and may split a
    # JSON line of ours.
    assert '"level": "debug"' in log.read_text(), \
        "--log-level debug overrides DETECTOR_LOG_LEVEL=INFO"
    assert {line["group_id"] for line in log_lines(log)
            if line.get("event") == "daemon_started"} == {group}


def test_config_check_reports_the_cluster_and_which_topics_exist(
        bootstrap_servers: str, unique_name: str) -> None:
    create_topics(bootstrap_servers, f"{unique_name}-in", partitions=1)
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_KAFKA_INPUT_TOPIC": f"{unique_name}-in"}
    proc = subprocess.run([sys.executable, "-m", "detector", "config", "--check",
                           "--bootstrap-server", bootstrap_servers, "--output-topic",
                           f"{unique_name}-out"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kafka"]["output_topic"] == f"{unique_name}-out"
    assert proc.stderr.strip().splitlines() == [
        f"detector: Kafka at {bootstrap_servers} answered (1 broker); topics present: "
        f"{unique_name}-in; missing: {unique_name}-out (DETECTOR_KAFKA_CREATE_TOPICS=false)"]
