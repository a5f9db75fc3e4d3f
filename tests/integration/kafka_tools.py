"""Test helpers against the real broker: topics, reading a topic, group offsets, the daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.producer.future import RecordMetadata

REPO = Path(__file__).resolve().parents[2]


def create_topics(bootstrap: str, *topics: str, partitions: int = 4) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
            ) -> list[RecordMetadata]:
    """Send the records in order; their metadata (partition, offset) in the same order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in records]
        producer.flush()
        return [f.get(timeout=30) for f in futures]
    finally:
        producer.close()


def read_topic(bootstrap: str, topic: str, *, idle_s: float = 2.0, timeout_s: float = 60.0
               ) -> list:
    """Every record now in the topic (all partitions), read until idle."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        out: list = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=300)
            for recs in batch.values():
                out.extend(recs)
                last = time.monotonic()
        return out
    finally:
        consumer.close()


def read_json(bootstrap: str, topic: str, **kw: float) -> list[dict]:
    return [orjson.loads(r.value) for r in read_topic(bootstrap, topic, **kw)]


def committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {tp.partition: o.offset for tp, o in offsets.items() if o.offset >= 0}
    finally:
        admin.close()


def wait_committed(bootstrap: str, group: str, total: int, *, timeout_s: float,
                   proc: subprocess.Popen | None = None) -> dict[int, int]:
    deadline = time.monotonic() + timeout_s
    offsets: dict[int, int] = {}
    while time.monotonic() < deadline:
        offsets = committed(bootstrap, group)
        if sum(offsets.values()) >= total:
            return offsets
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited early with code {proc.returncode}")
        time.sleep(0.1)
    raise AssertionError(f"group {group} committed {sum(offsets.values())}/{total} "
                         f"in {timeout_s}s: {offsets}")


def daemon_env(bootstrap: str, input_topic: str, output_topic: str, group: str,
               **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    env.update({
        "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DETECTOR_KAFKA_INPUT_TOPIC": input_topic,
        "DETECTOR_KAFKA_OUTPUT_TOPIC": output_topic,
        "DETECTOR_KAFKA_GROUP_ID": group,
        "DETECTOR_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "1500",
        "DETECTOR_LOG_FORMAT": "json",
        "DETECTOR_SERVICE_STATS_INTERVAL_S": "5",
        # Several daemons may run at once: a test that scrapes one gives it a free port.
        "DETECTOR_SERVICE_METRICS_PORT": "0",
    })
    env.update(extra)
    return env


def start_daemon(env: Mapping[str, str], log_path: Path, *args: str) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "detector", "run", *args], env=dict(env),
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def stop_daemon(proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("daemon did not stop within the deadline") from None


def log_lines(log_path: Path) -> list[dict]:
    lines = []
    for raw in log_path.read_bytes().splitlines():
        try:
            lines.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return lines
