"""`detector simulate`: produce synthetic network telemetry to the input topic."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import structlog

from detector.kafka_clients import build_producer
from detector.records import format_ts
from detector.settings import KafkaSettings
from detector.sim.traffic import TrafficGenerator, TrafficPlan, plan_traffic

log = structlog.get_logger("detector.sim.produce")


def demo_plan(streams: int, steps: int, seed: int, incidents: int) -> TrafficPlan:
    """The plan `simulate` and `demo` share: incidents after a warm-up, before the end."""
    return plan_traffic(streams, seed=seed, n_steps=steps, n_incidents=incidents,
                        incident_kinds=("spike", "outage", "level_shift", "ratio"),
                        earliest_index=max(steps // 3, 100), latest_index=steps - 15)


def encode_event(event: dict) -> bytes:
    return orjson.dumps({"stream": event["stream"], "ts": format_ts(event["ts"]),
                         "metrics": event["metrics"]})


def produce_traffic(k: KafkaSettings, plan: TrafficPlan, steps: int, *, seed: int,
                    rate: float = 0.0, topic: str | None = None,
                    should_stop: Callable[[], bool] = lambda: False) -> int:
    """Send `steps` steps of the plan's traffic; `rate` events/s (0 = as fast as possible).
    Returns the number of events acknowledged."""
    producer = build_producer(k, linger_ms=20, batch_size=256 * 1024)
    generator = TrafficGenerator(plan, seed=seed)
    target = topic or k.input_topic
    sent, started = 0, time.monotonic()
    try:
        for _ in range(steps):
            if should_stop():
                break
            for event in generator.step():
                producer.send(target, key=event["stream"].encode(), value=encode_event(event))
                sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    log.info("simulation_sent", events=sent, streams=len(plan.streams),
             seconds=round(time.monotonic() - started, 2))
    return sent
