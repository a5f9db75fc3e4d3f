"""Bad input never crashes or stalls the daemon: logged with coordinates, dead-lettered, skipped."""

from __future__ import annotations

import math
import time
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_tools import (
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
BAD_RECORDS: list[tuple[bytes | None, bytes | None, str]] = [
    (b"edge-01/eth0", b"{this is not json", "malformed JSON"),
    (b"edge-01/eth0", b'{"stream": "edge-01/eth0", "metrics": {"bytes_in": 1}}', "'ts'"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"bytes_in": NaN}}', "malformed JSON"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"bytes_in": Infinity}}', "malformed"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"bytes_in": 1e999}}', "malformed"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"bytes_in": "1500"}}', "got str"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"bytes_in": 1e300}}', "finite"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "value": "' + b"x" * 1_000_000 + b'"}', "exceeds"),
    (b"", b'{"ts": 1772409600, "value": 1}', "missing key"),
    (None, b'{"ts": 1772409600, "value": 1}', "missing key"),
    (b"edge-01/eth0", None, "empty value"),
    (b"edge-01/eth0", b'{"ts": 1772409600, "metrics": {"cpu": 1}}', "unknown metrics"),
    (b"\xff" * 4, b'{"ts": 1772409600, "value": 1}', "UTF-8"),
]


def good(stream: str, step: int, factor: float = 1.0) -> tuple[bytes, bytes]:
    level = 1e6 * (1 + 0.3 * math.sin(2 * math.pi * step / 288)) * (1 + 0.02 * math.sin(step))
    body = {"stream": stream, "ts": T0 + 300 * step,
            "metrics": {"bytes_in": level * factor, "bytes_out": 0.3 * level * factor}}
    return stream.encode(), orjson.dumps(body)


def test_bad_records_are_dead_lettered_with_coordinates_and_good_ones_still_scored(
        bootstrap_servers: str, unique_name: str, tmp_path: Path) -> None:
    topic, out, dlq = f"{unique_name}-in", f"{unique_name}-alerts", f"{unique_name}-dlq"
    create_topics(bootstrap_servers, topic, partitions=1)
    create_topics(bootstrap_servers, out, dlq, partitions=1)
    streams = ["edge-01/eth0", "edge-02/eth0"]
    records: list[tuple[bytes | None, bytes | None]] = []
    bad_offsets: dict[int, str] = {}
    for step in range(300):
        for s in streams:
            records.append(good(s, step, factor=12.0 if (s, step) == ("edge-02/eth0", 260)
                                else 1.0))
        if step >= 100 and (step - 100) % 10 == 0 and (step - 100) // 10 < len(BAD_RECORDS):
            key, value, reason = BAD_RECORDS[(step - 100) // 10]
            bad_offsets[len(records)] = reason
            records.append((key, value))
    produce(bootstrap_servers, topic, records)

    env = daemon_env(bootstrap_servers, topic, out, f"{unique_name}-g",
                     DETECTOR_KAFKA_DLQ_TOPIC=dlq, DETECTOR_STATE_MAX_EVENT_BYTES="65536")
    log = tmp_path / "daemon.log"
    proc = start_daemon(env, log)
    try:
        wait_committed(bootstrap_servers, f"{unique_name}-g", len(records), timeout_s=120,
                       proc=proc)
        time.sleep(0.5)
        assert proc.poll() is None, "daemon exited on bad input"
    finally:
        assert stop_daemon(proc) == 0

    dead = {d["source"]["offset"]: d for d in read_json(bootstrap_servers, dlq)}
    assert set(dead) == set(bad_offsets)
    for offset, reason in bad_offsets.items():
        entry = dead[offset]
        assert reason in entry["error"], (offset, entry["error"])
        assert entry["source"] == {"topic": topic, "partition": 0, "offset": offset}
    oversize = next(d for d in dead.values() if "exceeds" in d["error"])
    assert oversize["payload_truncated"] and len(oversize["payload"]) <= 4096

    warned = {line["source"] for line in log_lines(log) if line.get("event") == "bad_record"}
    assert warned == {f"{topic}[0]@{o}" for o in bad_offsets}

    alerts = read_json(bootstrap_servers, out)
    spikes = [a for a in alerts if a["stream"] == "edge-02/eth0"
              and a["ts"] == "2026-03-02T21:40:00Z"]
    assert spikes, f"the spike after the bad records was not alerted: {alerts}"
