"""Over a thousand fuzzed poison pills among good events: each dead-lettered once, none stalls.

Runs the daemon against the real broker on a 4-partition topic where bad records of every
kind (tests/integration/poison_records.py) are interleaved with the events of good streams.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from detector.engine import Rejection
from detector.records import DLQ_KEY_BYTES, DLQ_PAYLOAD_BYTES, parse_event
from detector.records import Limits as ParseLimits
from tests.integration.kafka_tools import (
    committed,
    create_topics,
    daemon_env,
    log_lines,
    produce,
    read_topic,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.integration.poison_records import TS, Limits, Poison, poison_pills

pytestmark = pytest.mark.integration

LIMITS = Limits(max_event_bytes=2_048, max_stream_id_length=64, max_metrics=4,
                streams=tuple(f"edge-{i:02d}/eth0" for i in range(8)),
                metrics=("bytes_in", "bytes_out"))
N_POISON = 1_100
STEPS = 200
SPIKE = ("edge-03/eth0", 185)


def good(stream: str, step: int) -> tuple[bytes, bytes]:
    level = 1e6 * (1 + 0.3 * math.sin(2 * math.pi * step / 288)) * (1 + 0.02 * math.sin(step))
    level *= 12.0 if (stream, step) == SPIKE else 1.0
    body = {"stream": stream, "ts": TS + 300 * step,
            "metrics": {"bytes_in": level, "bytes_out": 0.3 * level}}
    return stream.encode(), orjson.dumps(body)


def interleave(pills: list[Poison], seed: int) -> list[tuple[Poison | None, bytes | None,
                                                            bytes | None]]:
    """Good events step by step with the pills scattered after the first step.

    Every stream's first event comes first: a pill naming an unknown metric must find its
    stream already known, or it would define the stream's metrics instead.
    """
    rng = random.Random(seed)
    goods = [good(s, t) for t in range(STEPS) for s in LIMITS.streams]
    first = len(LIMITS.streams)
    rest: list[tuple[Poison | None, bytes | None, bytes | None]] = [
        (None, k, v) for k, v in goods[first:]]
    for pill in pills:
        rest.insert(rng.randrange(len(rest) + 1), (pill, pill.key, pill.value))
    return [(None, k, v) for k, v in goods[:first]] + rest


def test_poison_pills_are_dead_lettered_once_and_never_stall_the_daemon(
        bootstrap_servers: str, unique_name: str, tmp_path: Path) -> None:
    pills = poison_pills(N_POISON, LIMITS, seed=5)
    parse_limits = ParseLimits(LIMITS.max_event_bytes, LIMITS.max_stream_id_length,
                               LIMITS.max_metrics)
    for pill in pills:  # the fuzzer itself: parse-level pills are bad for the reason given
        reason = parse_event(pill.key, pill.value, parse_limits)
        if pill.kind == "unknown_metric":
            assert not isinstance(reason, Rejection), reason
        else:
            assert isinstance(reason, Rejection) and pill.reason in reason.detail, (pill, reason)
    assert len({p.kind for p in pills}) >= 20

    topic, out, dlq = f"{unique_name}-in", f"{unique_name}-alerts", f"{unique_name}-dlq"
    create_topics(bootstrap_servers, topic, partitions=4)
    create_topics(bootstrap_servers, out, dlq, partitions=1)
    plan = interleave(pills, seed=6)
    sent = produce(bootstrap_servers, topic, [(k, v) for _, k, v in plan])
    bad = {(m.partition, m.offset): pill for (pill, _, _), m in zip(plan, sent, strict=True)
           if pill is not None}
    good_coords = {(m.partition, m.offset) for (pill, _, _), m in zip(plan, sent, strict=True)
                   if pill is None}
    ends = {p: 1 + max(m.offset for m in sent if m.partition == p) for p in range(4)}

    group = f"{unique_name}-g"
    env = daemon_env(bootstrap_servers, topic, out, group, DETECTOR_KAFKA_DLQ_TOPIC=dlq,
                     DETECTOR_STATE_MAX_EVENT_BYTES=str(LIMITS.max_event_bytes),
                     DETECTOR_STATE_MAX_STREAM_ID_LENGTH=str(LIMITS.max_stream_id_length),
                     DETECTOR_MODEL_MAX_METRICS=str(LIMITS.max_metrics))
    log = tmp_path / "daemon.log"
    proc = start_daemon(env, log)
    try:
        wait_committed(bootstrap_servers, group, len(plan), timeout_s=60, proc=proc)
        time.sleep(0.5)
        assert proc.poll() is None, "the daemon exited on bad input"
    finally:
        assert stop_daemon(proc) == 0
    assert committed(bootstrap_servers, group) == ends

    dead = read_topic(bootstrap_servers, dlq)
    entries = [orjson.loads(r.value) for r in dead]
    seen = Counter((e["source"]["partition"], e["source"]["offset"]) for e in entries)
    assert set(seen) == set(bad) and set(seen.values()) == {1}
    for record, entry in zip(dead, entries, strict=True):
        pill = bad[entry["source"]["partition"], entry["source"]["offset"]]
        assert entry["source"]["topic"] == topic
        assert entry["error"] and pill.reason in entry["error"], (pill.kind, entry["error"])
        assert entry["key"] == _excerpt(pill.key, DLQ_KEY_BYTES), pill.kind
        assert record.key == (pill.key[:DLQ_KEY_BYTES] if pill.key else None)
        assert entry["payload"] == _excerpt(pill.value, DLQ_PAYLOAD_BYTES), pill.kind
        assert entry["payload_truncated"] == (pill.value is not None
                                              and len(pill.value) > DLQ_PAYLOAD_BYTES)

    stats = [line for line in log_lines(log) if line.get("event") == "progress"][-1]
    assert (stats["events"], stats["bad_records"]) == (len(good_coords), len(bad))

    alerts = [orjson.loads(r.value) for r in read_topic(bootstrap_servers, out)]
    assert {(a["source"]["partition"], a["source"]["offset"]) for a in alerts} <= good_coords
    spike_ts = "2026-03-02T15:25:00Z"
    assert any(a["stream"] == SPIKE[0] and a["ts"] == spike_ts for a in alerts), alerts


def _excerpt(raw: bytes | None, limit: int) -> str | None:
    return raw[:limit].decode("utf-8", "replace") if raw is not None else None
