"""A number measured on replay is the number the daemon publishes for the same events."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.engine import EngineConfig
from detector.offline.replay import replay_file
from detector.records import format_ts
from tests.integration.kafka_tools import (
    create_topics,
    daemon_env,
    produce,
    read_json,
    start_daemon,
    stop_daemon,
    wait_committed,
)

pytestmark = pytest.mark.integration

T0 = 1_400_000_000.0
SETTINGS = {"DETECTOR_ALERT_THRESHOLD": "0.15", "DETECTOR_ALERT_CRITICAL_THRESHOLD": "0.9",
            "DETECTOR_ALERT_WARMUP_EVENTS": "100", "DETECTOR_MODEL_HIDDEN_SIZE": "16"}


def test_replay_scores_equal_the_daemon_alerts_on_the_same_stream(
        bootstrap_servers: str, unique_name: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = [40 + 8 * math.sin(i / 20) + rng.normal(0, 1) for i in range(600)]
    for at, factor in ((300, 3.0), (420, 0.2), (510, 2.5)):
        values[at] *= factor
    stamps = [format_ts(T0 + 300 * i).replace("T", " ").rstrip("Z") for i in range(600)]
    source = tmp_path / "stream.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip(stamps, values, strict=True))
    config = EngineConfig(threshold=0.15, critical_threshold=0.9, warmup_events=100,
                          hidden_size=16)
    replay_file(source, tmp_path / "replayed.csv", config)
    with (tmp_path / "replayed.csv").open() as handle:
        replayed = {format_ts(T0 + 300 * i): float(r["anomaly_score"])
                    for i, r in enumerate(csv.DictReader(handle)) if r["alert"] == "1"}
    assert len(replayed) >= 3 and min(replayed.values()) < 1.0

    topic, out, group = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-g"
    create_topics(bootstrap_servers, topic, out, partitions=1)
    produce(bootstrap_servers, topic, [
        (b"stream", orjson.dumps({"ts": T0 + 300 * i, "value": v}))
        for i, v in enumerate(values)])
    proc = start_daemon(daemon_env(bootstrap_servers, topic, out, group, **SETTINGS),
                        tmp_path / "daemon.log")
    try:
        wait_committed(bootstrap_servers, group, len(values), timeout_s=120, proc=proc)
    finally:
        assert stop_daemon(proc) == 0
    published = {a["ts"]: a["score"] for a in read_json(bootstrap_servers, out)}
    assert published.keys() == replayed.keys()
    for ts, score in replayed.items():
        assert published[ts] == pytest.approx(score, abs=1e-6)


def test_a_wide_host_is_scored_by_the_daemon_at_its_defaults_as_replay_scores_it(
        bootstrap_servers: str, unique_name: str, tmp_path: Path) -> None:
    """20 metrics on one stream: the defaults take it (before the lanes, the limit of 8
    refused every record), and the daemon's alerts and rankings are the replay's."""
    rng = np.random.default_rng(5)
    n, width = 500, 20
    rows = [[10.0 * (j + 1) * (1 + 0.2 * math.sin(i / 20)) * math.exp(rng.normal(0, 0.03))
             for j in range(width)] for i in range(n)]
    rows[400][13] *= 8
    names = [f"m{j:02d}" for j in range(width)]
    source = tmp_path / "host.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *names])
        writer.writerows([format_ts(T0 + 300 * i).replace("T", " ").rstrip("Z"), *row]
                         for i, row in enumerate(rows))
    replay_file(source, tmp_path / "replayed.csv", EngineConfig())
    with (tmp_path / "replayed.csv").open() as handle:
        replayed = {format_ts(T0 + 300 * i): r for i, r in enumerate(csv.DictReader(handle))
                    if r["alert"] == "1"}
    assert format_ts(T0 + 300 * 400) in replayed

    topic, out, group = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-g"
    create_topics(bootstrap_servers, topic, out, partitions=1)
    produce(bootstrap_servers, topic, [
        (b"host", orjson.dumps({"ts": T0 + 300 * i,
                                "metrics": dict(zip(names, row, strict=True))}))
        for i, row in enumerate(rows)])
    proc = start_daemon(daemon_env(bootstrap_servers, topic, out, group),
                        tmp_path / "daemon.log")
    try:
        wait_committed(bootstrap_servers, group, n, timeout_s=120, proc=proc)
    finally:
        assert stop_daemon(proc) == 0
    published = {a["ts"]: a for a in read_json(bootstrap_servers, out)}
    assert published.keys() == replayed.keys()
    for ts, row in replayed.items():
        assert published[ts]["score"] == pytest.approx(float(row["anomaly_score"]), abs=1e-6)
        ranked = [name for name, _ in orjson.loads(row["metrics"])]
        assert [m["name"] for m in published[ts]["metrics"]] == ranked
    assert published[format_ts(T0 + 300 * 400)]["metrics"][0]["name"] == "m13"
