"""The load of `detector bench throughput`, each part run in a child process of its own so that
producing never competes with the measured daemon for the bench process's interpreter lock:

* `pre_produce`: the bulk load (N streams x S steps of simulated traffic) as fast as a batched
  producer goes, before the daemon starts;
* `paced_load`: the same streams, continued, at a fixed rate;
* `probe_latency`: a few probe streams with spikes at known steps, produced at a low rate while
  the alerts topic is read; the latency of a spike is the alert's arrival on the output topic
  minus the moment the spike event was handed to the producer.

Every part returns a plain dict (it crosses a process boundary).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
from tqdm import tqdm

from detector.kafka_clients import build_producer, client_config
from detector.records import format_ts, parse_ts
from detector.settings import KafkaSettings
from detector.sim.traffic import METRICS, TrafficGenerator, plan_traffic

LOAD_NICENESS = 10        # added to the paced load's niceness (see paced_load)
PACE_CHUNK = 250          # events sent between two looks at the clock
SPIKE_FACTOR = 10.0       # every metric of a probe spike, against its usual value
ALERT_GRACE_S = 5.0       # how long the last spikes' alerts are waited for


@dataclass(frozen=True)
class LoadSpec:
    """Which traffic: the simulator's streams, the first `metrics` of its metrics."""

    streams: int
    metrics: int
    seed: int

    def generator(self) -> TrafficGenerator:
        return TrafficGenerator(plan_traffic(self.streams, seed=self.seed), seed=self.seed)

    def encode_step(self, events: list[dict]) -> list[tuple[bytes, bytes]]:
        """(key, value) records of one step, in the format `detector simulate` sends."""
        names = METRICS[: self.metrics]
        ts = format_ts(events[0]["ts"])  # one step, one timestamp
        return [(ev["stream"].encode(),
                 orjson.dumps({"stream": ev["stream"], "ts": ts,
                               "metrics": {n: ev["metrics"][n] for n in names}}))
                for ev in events]


@dataclass(frozen=True)
class ProbeSpec:
    """Probe streams `probe-NNN`: `warmup_steps` at full speed, then `live_steps` paced at
    `steps_per_s`, each stream spiking once. Once each, because the calibrator learns a
    stream's repeated spikes as normal. In a live step the usual events are sent together at
    its start and each spike at its own moment (probe i's at i/streams of the step); the
    probes spiking in one step are `span` apart, so no two spikes share a moment and each is
    a sample of its own."""

    streams: int
    warmup_steps: int
    live_steps: int
    steps_per_s: float
    lead_steps: int = 4  # live steps before the first spike: the warm-up backlog drains

    def is_spike(self, probe: int, step: int) -> bool:
        span = max(self.live_steps - self.lead_steps - 1, 1)
        return step == self.warmup_steps + self.lead_steps + probe % span


class _Acks:
    """Per partition, the offset after the last acknowledged record; failures counted."""

    def __init__(self) -> None:
        self.ends: dict[int, int] = {}
        self.failed = 0
        self.first_error = ""

    def ok(self, md: Any) -> None:
        if md.offset + 1 > self.ends.get(md.partition, 0):
            self.ends[md.partition] = md.offset + 1

    def error(self, exc: Exception) -> None:
        self.failed += 1
        self.first_error = self.first_error or repr(exc)

    def check(self) -> None:
        if self.failed:
            raise RuntimeError(f"{self.failed} records not acknowledged: {self.first_error}")


class _Sender:
    """Sends keyed records, each to the partition Kafka's default partitioner picks, with
    that choice made once per key: hashing every key again costs the load generator a fifth
    of its time, which the measured daemon would lose on a shared machine."""

    def __init__(self, producer: Any, topic: str, acks: _Acks) -> None:
        self.producer, self.topic, self.acks = producer, topic, acks
        self.partitions = sorted(producer.partitions_for(topic))
        self._partition_of: dict[bytes, int] = {}

    def send(self, records: list[tuple[bytes, bytes]]) -> None:
        send, topic, acks = self.producer.send, self.topic, self.acks
        for key, value in records:
            partition = self._partition_of.get(key)
            if partition is None:
                index = (murmur2(key) & 0x7FFFFFFF) % len(self.partitions)
                partition = self._partition_of[key] = self.partitions[index]
            send(topic, key=key, value=value, partition=partition).add_callback(
                acks.ok).add_errback(acks.error)


def pre_produce(k: KafkaSettings, topic: str, spec: LoadSpec, steps: int) -> dict:
    """spec.streams x steps events, as fast as possible."""
    producer = build_producer(k, linger_ms=50, batch_size=1024 * 1024)
    generator, acks = spec.generator(), _Acks()
    sender = _Sender(producer, topic, acks)
    started = time.monotonic()
    try:
        with tqdm(total=spec.streams * steps, unit="ev", desc="produce", unit_scale=True) as bar:
            for _ in range(steps):
                records = spec.encode_step(generator.step())
                sender.send(records)
                bar.update(len(records))
            producer.flush()
    finally:
        producer.close()
    acks.check()
    return {"events": sum(acks.ends.values()), "ends": acks.ends,
            "seconds": time.monotonic() - started}


def paced_load(k: KafkaSettings, topic: str, spec: LoadSpec, skip_steps: int, rate: float,
               duration_s: float) -> dict:
    """The streams' next steps (after `skip_steps` already sent) at `rate` events/s.

    At a lower scheduling priority: on a machine of two cores this process needs half a core
    for ~15,000 events/s, and where it runs beside the daemon it stands in for producers that
    run elsewhere; the probes that time the alerts keep the normal priority."""
    os.nice(LOAD_NICENESS)
    producer = build_producer(k, linger_ms=5)
    generator, acks = spec.generator(), _Acks()
    sender = _Sender(producer, topic, acks)
    for _ in range(skip_steps):
        generator.step()
    sent, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < duration_s:
            records = spec.encode_step(generator.step())
            for i in range(0, len(records), PACE_CHUNK):
                sender.send(records[i: i + PACE_CHUNK])
                sent += len(records[i: i + PACE_CHUNK])
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                if time.monotonic() - started >= duration_s:
                    break
        producer.flush()
    finally:
        producer.close()
    acks.check()
    elapsed = time.monotonic() - started
    return {"events": sent, "seconds": elapsed, "events_per_s": sent / elapsed}


def probe_latency(k: KafkaSettings, topic: str, alerts_topic: str, spec: LoadSpec,
                  probe: ProbeSpec) -> dict:
    """Spike latencies (ms) of the probe streams, with the counts needed to judge them."""
    names = [f"probe-{i:03d}" for i in range(probe.streams)]
    generator = TrafficGenerator(plan_traffic(probe.streams, seed=spec.seed + 1),
                                 seed=spec.seed + 1)
    producer = build_producer(k, linger_ms=0)
    watcher = _AlertWatcher(k, alerts_topic, set(names))
    spikes: dict[tuple[str, float], float] = {}  # (stream, ts) -> handed to the producer at

    def send(i: int, ev: dict, step: int) -> None:
        spike = probe.is_spike(i, step)
        factor = SPIKE_FACTOR if spike else 1.0
        value = orjson.dumps({"stream": names[i], "ts": format_ts(ev["ts"]), "metrics": {
            n: ev["metrics"][n] * factor for n in METRICS[: spec.metrics]}})
        sent_at = time.time()
        producer.send(topic, key=names[i].encode(), value=value)
        if spike:
            spikes[(names[i], ev["ts"])] = sent_at

    try:
        for step in range(probe.warmup_steps):
            for i, ev in enumerate(generator.step()):
                send(i, ev, step)
        producer.flush()
        # A collection pausing this process would count as the daemon's latency.
        gc.freeze()
        gc.disable()
        started = time.monotonic()
        for live in range(probe.live_steps):
            step = probe.warmup_steps + live
            _sleep_until(started + live / probe.steps_per_s)
            spiking = []
            for i, ev in enumerate(generator.step()):  # the usual events go together
                if probe.is_spike(i, step):
                    spiking.append((i, ev))
                else:
                    send(i, ev, step)
            for i, ev in spiking:  # each spike at its own moment of the step
                _sleep_until(started + (live + i / probe.streams) / probe.steps_per_s)
                send(i, ev, step)
        producer.flush()
        watcher.wait_for(set(spikes), ALERT_GRACE_S)
    finally:
        gc.enable()
        producer.close()
        watcher.close()
    arrived = watcher.arrived()
    latencies = [(arrived[key] - sent_at) * 1_000 for key, sent_at in spikes.items()
                 if key in arrived]
    return {"spikes": len(spikes), "latencies_ms": latencies,
            "other_probe_alerts": len(arrived.keys() - spikes.keys())}


def _sleep_until(moment: float) -> None:
    ahead = moment - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)


class _AlertWatcher:
    """Reads the alerts topic in a thread of its own, noting when each alert of the watched
    streams arrived, while the probe's main thread sends on its schedule."""

    def __init__(self, k: KafkaSettings, topic: str, streams: set[str]) -> None:
        # Earliest, not latest: the broker's ListOffsets LATEST is unreliable (shared/kafka.md);
        # older alerts are of other streams and skipped.
        self.consumer = KafkaConsumer(**client_config(k), auto_offset_reset="earliest",
                                      enable_auto_commit=False, fetch_max_wait_ms=5)
        parts = self.consumer.partitions_for_topic(topic) or {0}
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        self.streams = streams
        self._arrived: dict[tuple[str, float], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=20).values():
                arrived_at = time.time()
                for rec in records:
                    alert = orjson.loads(rec.value)
                    if alert["stream"] in self.streams:
                        key = (alert["stream"], float(parse_ts(alert["ts"])))
                        with self._lock:
                            self._arrived.setdefault(key, arrived_at)

    def arrived(self) -> dict[tuple[str, float], float]:
        """(stream, ts) -> arrival time (epoch seconds) of the alerts seen so far."""
        with self._lock:
            return dict(self._arrived)

    def wait_for(self, keys: set[tuple[str, float]], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not keys <= self.arrived().keys() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()
