"""What an operator sees of a running daemon, against the real broker: a missing input topic
in the log and /readyz, JSON-only stdout, one line per alert, the progress rate, the refusal to
start when the streams cannot fit the memory limit, and the memory formula against a
measurement."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from detector.bench.memory import measure
from tests.integration.kafka_tools import (
    REPO,
    create_topics,
    daemon_env,
    produce,
    read_json,
    stop_daemon,
    wait_committed,
)
from tests.integration.test_bad_input import good
from tests.integration.test_telemetry import get, wait_for

pytestmark = pytest.mark.integration

STREAMS = [f"edge-{i:02d}/eth0" for i in range(4)]
STEPS = 150
SPIKE = ("edge-02/eth0", 120)


def start(env: dict[str, str], out: Path, err: Path) -> subprocess.Popen:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "detector", "run"], env=env,
                                stdout=stdout, stderr=stderr, cwd=REPO)


def reasons(port: int) -> list[str]:
    status, body = get(port, "/readyz")
    return orjson.loads(body).get("reasons", []) if status == 503 else []


def test_missing_input_topic_is_logged_and_not_ready_until_created_then_scored(
        bootstrap_servers: str, unique_name: str, free_port: int, tmp_path: Path) -> None:
    topic, alerts_topic, group = f"{unique_name}-in", f"{unique_name}-alerts", f"{unique_name}-g"
    create_topics(bootstrap_servers, alerts_topic, partitions=1)
    env = daemon_env(bootstrap_servers, topic, alerts_topic, group,
                     DETECTOR_SERVICE_METRICS_PORT=str(free_port),
                     DETECTOR_SERVICE_METRICS_BIND="127.0.0.1",
                     DETECTOR_SERVICE_STATS_INTERVAL_S="1",
                     DETECTOR_LOG_KAFKA_LEVEL="INFO", DETECTOR_LOG_FORMAT="json")
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    proc = start(env, out, err)
    try:
        missing = f"input topic {topic!r} does not exist"
        wait_for(lambda: missing in reasons(free_port), 60, proc, "the missing-topic reason")
        assert get(free_port, "/healthz")[0] == 200, "waiting is alive, not stuck"
        time.sleep(2)
        assert missing in reasons(free_port), "still missing: the daemon never created it"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
        try:
            assert topic not in admin.list_topics()
            admin.create_topics([NewTopic(topic, 2, 1)])
        finally:
            admin.close()
        records = [good(s, step, 12.0 if (s, step) == SPIKE else 1.0)
                   for step in range(STEPS) for s in STREAMS]
        produce(bootstrap_servers, topic, records)
        wait_for(lambda: get(free_port, "/readyz")[0] == 200, 90, proc, "/readyz 200")
        wait_committed(bootstrap_servers, group, len(records), timeout_s=120, proc=proc)
        time.sleep(1.5)  # one more progress line after the last batch
    finally:
        assert stop_daemon(proc) == 0

    published = read_json(bootstrap_servers, alerts_topic)
    raw = out.read_bytes().splitlines()
    lines = [orjson.loads(line) for line in raw]  # every stdout line is JSON
    assert err.read_bytes() == b"", "logs go to stdout"
    assert all(line["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR") for line in lines)
    events = [line["event"] for line in lines]
    (warned,) = [line for line in lines if line["event"] == "input_topic_missing"]
    assert warned["severity"] == "ERROR" and warned["topic"] == topic
    assert events.index("input_topic_missing") < events.index("input_topic_found")
    assert any(line["logger"].startswith("kafka") for line in lines), "kafka-python's lines"
    logged = [line for line in lines if line["event"] == "alert"]
    assert published and len(logged) == len(published)
    assert {(a["stream"], a["score"], a["alert_id"]) for a in logged} == {
        (a["stream"], a["score"], a["alert_id"]) for a in published}
    spike = next(a for a in logged if a["stream"] == SPIKE[0])
    assert spike["top_metric"] in ("bytes_in", "bytes_out", "value") and spike["actual"] > 0
    progress = [line for line in lines if line["event"] == "progress"]
    assert progress[-1]["events"] == len(records)
    assert progress[-1]["events_per_s"] == 0.0, "the current rate: idle at the end"
    assert progress[-1]["events_per_s_avg"] > 0
    assert max(p["events_per_s"] for p in progress) > progress[-1]["events_per_s_avg"]


def test_sigterm_while_waiting_for_the_input_topic_stops_cleanly(
        bootstrap_servers: str, unique_name: str, free_port: int, tmp_path: Path) -> None:
    topic = f"{unique_name}-in"
    env = daemon_env(bootstrap_servers, topic, f"{unique_name}-alerts",
                     f"{unique_name}-g", DETECTOR_SERVICE_METRICS_PORT=str(free_port),
                     DETECTOR_SERVICE_METRICS_BIND="127.0.0.1")
    proc = start(env, tmp_path / "stdout.log", tmp_path / "stderr.log")
    try:
        wait_for(lambda: f"input topic {topic!r} does not exist" in reasons(free_port), 60, proc,
                 "the daemon to wait for its topic")
    finally:
        assert stop_daemon(proc, timeout_s=15) == 0
    events = [orjson.loads(line)["event"] for line in (tmp_path / "stdout.log").read_bytes()
              .splitlines()]
    assert events[-2:] == ["progress", "daemon_stopped"] and "input_topic_missing" in events


def test_more_streams_than_the_memory_limit_holds_exits_2_naming_the_variables(
        bootstrap_servers: str, unique_name: str) -> None:
    topic = f"{unique_name}-in"
    create_topics(bootstrap_servers, topic, partitions=4)
    env = daemon_env(bootstrap_servers, topic, f"{unique_name}-alerts", f"{unique_name}-g",
                     DETECTOR_SERVICE_MEMORY_LIMIT="2Gi")
    proc = subprocess.run([sys.executable, "-m", "detector", "run"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("detector: configuration error: DETECTOR_STATE_MAX_STREAMS: 100000 "
                           f"streams x the 4 partitions of DETECTOR_KAFKA_INPUT_TOPIC "
                           f"'{topic}' need ")
    assert "over DETECTOR_SERVICE_MEMORY_LIMIT (2,048 MiB)" in line


@pytest.mark.slow
def test_memory_formula_covers_the_measured_peaks_of_a_daemon(bootstrap_servers: str,
                                                              tmp_path: Path) -> None:
    report = measure(bootstrap_servers, 30_000, tmp_path / "daemons.log")
    budget = report["budget_bytes_per_stream"]
    peaks = (report["scoring_peak_bytes_per_stream"], report["restore_peak_bytes_per_stream"])
    print(report)
    assert max(peaks) <= budget, "the formula no longer covers the measurement: re-derive it"
    assert max(peaks) > 0.6 * budget, "the formula is far above what a stream costs"
    assert report["held_bytes_per_stream"] > report["state_bytes_per_stream"]
