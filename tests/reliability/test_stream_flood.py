"""Stream flood: 100,000 unique stream ids keep memory bounded and known streams scored.

A misbehaving producer (or an attack) sends one event each for 100,000 new stream ids, among
the events of 40 known streams. The daemon holds at most DETECTOR_STATE_MAX_STREAMS streams per
partition (evicting the least recently seen), admits new streams at the admission rate once
the burst is spent (refusing the rest to the dead-letter topic), keeps scoring the known
streams, and its resident memory stops growing once the arena is full. The counters say so on
/metrics.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.kafka_tools import (
    create_topics,
    daemon_env,
    produce,
    start_daemon,
    stop_daemon,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

FLOOD, KNOWN, PARTITIONS, MAX_STREAMS = 100_000, 40, 4, 2_000
ROUNDS = 4
T0 = 1_772_409_600.0


def event(stream: str, step: int, value: float) -> tuple[bytes, bytes]:
    return stream.encode(), orjson.dumps({"stream": stream, "ts": T0 + 300.0 * step,
                                          "metrics": {"bytes_in": value, "flows": 7.0}})


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            key = sample.name + "".join(f"|{v}" for _, v in sorted(sample.labels.items()))
            out[key] = out.get(key, 0.0) + sample.value
    return out


def test_a_flood_of_new_stream_ids_keeps_memory_bounded(bootstrap_servers: str,
                                                       unique_name: str, free_port: int,
                                                       tmp_path: Path) -> None:
    topic, dlq, group = f"{unique_name}-in", f"{unique_name}-dlq", f"{unique_name}-g"
    create_topics(bootstrap_servers, topic, partitions=PARTITIONS)
    env = daemon_env(bootstrap_servers, topic, f"{unique_name}-alerts", group,
                     DETECTOR_KAFKA_CREATE_TOPICS="true", DETECTOR_KAFKA_DLQ_TOPIC=dlq,
                     DETECTOR_STATE_MAX_STREAMS=str(MAX_STREAMS),
                     DETECTOR_SERVICE_METRICS_PORT=str(free_port),
                     DETECTOR_SERVICE_METRICS_BIND="127.0.0.1")
    proc = start_daemon(env, tmp_path / "daemon.log")
    per_round = FLOOD // ROUNDS
    sent, rss = 0, []
    try:
        for r in range(ROUNDS):
            records = []
            for i in range(per_round):
                records.append(event(f"flood-{r}-{i:06d}", r, 1.0 + i % 5))
                if i % (per_round // 100) == 0:  # 100 steps of the known streams per round
                    step = r * 100 + i // (per_round // 100)
                    records += [event(f"known-{k:02d}", step, 100.0 + k) for k in range(KNOWN)]
            produce(bootstrap_servers, topic, records)
            sent += len(records)
            wait_committed(bootstrap_servers, group, sent, timeout_s=240, proc=proc)
            rss.append(rss_mb(proc.pid))
        time.sleep(1.5)  # one more loop turn for the gauges
        metrics = scrape(free_port)
    finally:
        assert stop_daemon(proc) == 0

    live = metrics["detector_live_streams"]
    evicted = metrics["detector_evictions_total"]
    refused = metrics["detector_bad_records_total|admission"]
    scored = metrics["detector_events_scored_total"]
    print(f"\nstream flood: {FLOOD} new ids + {KNOWN} known streams; live {live:.0f} "
          f"(limit {MAX_STREAMS} x {PARTITIONS}), evicted {evicted:.0f}, refused by the "
          f"admission limit {refused:.0f}, scored {scored:.0f}; RSS per round (MB): "
          f"{', '.join(f'{m:.0f}' for m in rss)}")
    assert live <= MAX_STREAMS * PARTITIONS
    assert evicted > 0 and refused > 0
    assert scored + refused == sent, "every event is scored or dead-lettered"
    assert sum(v for k, v in metrics.items() if k.startswith("detector_bad_records_total|")
               ) == refused, "the only bad records are the streams refused admission"
    # The arena is full after the first round: memory stays flat from there on.
    assert max(rss[1:]) - rss[0] < 40, rss
