"""The daemon's /metrics, /healthz and /readyz over HTTP, against what went through the broker."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.kafka_tools import (
    create_topics,
    daemon_env,
    produce,
    read_json,
    read_topic,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.integration.test_bad_input import BAD_RECORDS, good

pytestmark = pytest.mark.integration

STREAMS = [f"edge-{i:02d}/eth0" for i in range(4)]
STEPS = 150
SPIKE = ("edge-02/eth0", 120)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """name → {sorted label items → value}."""
    status, body = get(port, "/metrics")
    assert status == 200
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def wait_for(condition, timeout_s: float, proc, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"daemon exited with {proc.returncode} waiting for {what}"
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_count_what_went_through_the_broker_and_probes_turn_ready(
        bootstrap_servers: str, unique_name: str, free_port: int, tmp_path: Path) -> None:
    topic, out, dlq = f"{unique_name}-in", f"{unique_name}-alerts", f"{unique_name}-dlq"
    group = f"{unique_name}-g"
    create_topics(bootstrap_servers, topic, partitions=2)
    create_topics(bootstrap_servers, out, dlq, partitions=1)
    records: list[tuple[bytes | None, bytes | None]] = []
    for step in range(STEPS):
        for stream in STREAMS:
            records.append(good(stream, step, 12.0 if (stream, step) == SPIKE else 1.0))
        if 70 <= step < 70 + len(BAD_RECORDS):
            key, value, _ = BAD_RECORDS[step - 70]
            records.append((key, value))
    produce(bootstrap_servers, topic, records)

    env = daemon_env(bootstrap_servers, topic, out, group, DETECTOR_KAFKA_DLQ_TOPIC=dlq,
                     DETECTOR_KAFKA_MAX_POLL_RECORDS="100",
                     DETECTOR_SERVICE_METRICS_PORT=str(free_port),
                     DETECTOR_SERVICE_METRICS_BIND="127.0.0.1")
    proc = start_daemon(env, tmp_path / "daemon.log")
    try:
        wait_for(lambda: get(free_port, "/readyz")[0] == 200, 60, proc, "/readyz 200")
        assert get(free_port, "/healthz")[0] == 200
        wait_committed(bootstrap_servers, group, len(records), timeout_s=120, proc=proc)

        def caught_up() -> dict | None:
            m = scrape(free_port)
            done = (m["detector_events_consumed_total"][()] == len(records)
                    and set(m.get("detector_consumer_lag", {}).values()) == {0.0})
            return m if done else None

        metrics = wait_for(caught_up, 30, proc, "every record consumed and the lag at 0")
        assert get(free_port, "/healthz")[0] == 200
        assert get(free_port, "/readyz")[0] == 200
    finally:
        assert stop_daemon(proc) == 0

    dead = read_json(bootstrap_servers, dlq)
    alerts = read_json(bootstrap_servers, out)
    partitions = {r.partition for r in read_topic(bootstrap_servers, topic)}
    assert len(dead) == len(BAD_RECORDS) and alerts, "the scenario must exercise both"
    assert sum(metrics["detector_bad_records_total"].values()) == len(dead)
    by_kind = Counter(entry["kind"] for entry in dead)
    assert {dict(k)["reason"]: v for k, v in metrics["detector_bad_records_total"].items()
            if v} == by_kind
    assert (metrics["detector_events_scored_total"][()]
            == len(records) - len(BAD_RECORDS) == len(STREAMS) * STEPS)
    by_severity = Counter(a["severity"] for a in alerts)
    assert {dict(k)["severity"]: v for k, v in
            metrics["detector_alerts_published_total"].items()} == by_severity
    assert {dict(k)["partition"] for k in metrics["detector_consumer_lag"]} == {
        str(p) for p in partitions}
    assert metrics["detector_live_streams"][()] == len(STREAMS)
    losses = metrics["detector_model_train_loss"]
    assert {dict(k)["partition"] for k in losses} == {str(p) for p in partitions}
    assert all(0 < loss < 100 for loss in losses.values())
    assert metrics["detector_assigned_partitions"][()] == 2
    assert (metrics["detector_batch_latency_seconds_count"][()]
            == metrics["detector_batches_total"][()] >= len(records) / 100)
