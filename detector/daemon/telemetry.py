"""The daemon's metrics: the one place its counts live, in a private Prometheus registry.

`Telemetry` owns a CollectorRegistry of its own (no process-wide default registry, so several
daemons in one process never collide), with the process and Python collectors beside the
daemon's metrics, and the probes (detector/daemon/probes.py) that judge liveness and readiness;
its server exposes both over HTTP.

The daemon calls the recording methods from its poll loop and rebalance listener; the HTTP
thread only reads. Lag, live streams and training loss are sampled in the loop thread after
each poll, because the Kafka consumer and the engines are not safe to touch from another one.
The progress line and the throughput bench read the counts back through `totals`.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from detector import __version__
from detector.daemon.probes import Probes, ProbeServer
from detector.engine.types import REJECTION_KINDS
from detector.settings import Settings

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Totals:
    """Counts since start-up, read from the metrics themselves (the progress line, the bench):
    each read collects one metric only, a few microseconds."""

    def __init__(self, scored: Counter, alerts: Counter, bad_records: Counter,
                 evictions: Counter) -> None:
        self._scored, self._alerts = scored, alerts
        self._bad_records, self._evictions = bad_records, evictions

    @property
    def events(self) -> int:
        """Events scored."""
        return _total(self._scored)

    @property
    def alerts(self) -> int:
        """Alerts published, all severities."""
        return _total(self._alerts)

    @property
    def bad_records(self) -> int:
        """Bad records, all reasons."""
        return _total(self._bad_records)

    @property
    def evictions(self) -> int:
        return _total(self._evictions)


class Telemetry:
    """The daemon's metrics and probes, and the HTTP server that exposes both."""

    def __init__(self, *, port: int, bind: str = "0.0.0.0",  # noqa: S104 - scraped remotely
                 stall_after_s: float = 300.0, broker_stale_after_s: float = 10.0,
                 bootstrap: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.probes = Probes(stall_after_s=stall_after_s,
                             broker_stale_after_s=broker_stale_after_s, bootstrap=bootstrap,
                             clock=clock)
        self.registry = CollectorRegistry(auto_describe=True)
        self._define_metrics()
        self.server = ProbeServer(self.registry, self.probes, bind=bind, port=port)

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        s, k = settings.service, settings.kafka
        return cls(port=s.metrics_port, bind=s.metrics_bind,
                   stall_after_s=k.max_poll_interval_ms / 1000,
                   broker_stale_after_s=k.session_timeout_ms / 1000,
                   bootstrap=k.bootstrap_servers)

    def _define_metrics(self) -> None:
        r = self.registry
        self.events_consumed = Counter("detector_events_consumed", "Records taken from the "
                                       "input topic, good or bad.", registry=r)
        self.events_scored = Counter("detector_events_scored", "Events the engine scored.",
                                     registry=r)
        self.alerts = Counter("detector_alerts_published", "Alerts sent to the output topic.",
                              ["severity"], registry=r)
        self.bad_records = Counter("detector_bad_records", "Records rejected as bad input "
                                   "(dead-lettered when a DLQ topic is set), by kind.",
                                   ["reason"], registry=r)
        self.batches = Counter("detector_batches", "Polled batches scored.", registry=r)
        self.batch_latency = Histogram("detector_batch_latency_seconds", "Time to score one "
                                       "polled batch: parse its records, score its events and "
                                       "hand its alerts and dead letters to the producer.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("detector_consumer_lag", "Records of an assigned input partition "
                         "not yet consumed: fetch high-water mark minus position.",
                         ["partition"], registry=r)
        self.partitions = Gauge("detector_assigned_partitions", "Input partitions assigned "
                                "to this member.", registry=r)
        self.live_streams = Gauge("detector_live_streams", "Streams held in memory, all "
                                  "partitions.", registry=r)
        self.evictions = Counter("detector_evictions", "Streams evicted from memory.",
                                 registry=r)
        self.train_loss = Gauge("detector_model_train_loss", "Loss of the last online "
                                "training step of a partition's model.", ["partition"],
                                registry=r)
        self.checkpoint_duration = Histogram("detector_checkpoint_duration_seconds",
                                             "Time to write one state checkpoint.",
                                             buckets=STATE_BUCKETS, registry=r)
        self.restore_duration = Histogram("detector_restore_duration_seconds", "Time to "
                                          "restore an assigned partition's state.",
                                          buckets=STATE_BUCKETS, registry=r)
        self.restored_streams = Counter("detector_restored_streams", "Streams restored from "
                                        "saved state on assignment.", registry=r)
        self.checkpoint_failures = Counter("detector_checkpoint_failures", "Checkpoints whose "
                                           "offset commit the group refused or the "
                                           "coordinator did not answer.", registry=r)
        self.last_checkpoint = Gauge("detector_last_checkpoint_timestamp_seconds", "Unix time "
                                     "of the last checkpoint that completed.", registry=r)
        broker = Gauge("detector_broker_connected", "1 while the broker answered within the "
                       "session timeout (as /readyz judges it), else 0.", registry=r)
        broker.set_function(lambda: float(self.probes.broker_connected()))
        ready = Gauge("detector_ready", "1 while /readyz answers 200, else 0.", registry=r)
        ready.set_function(lambda: float(self.probes.readiness()[0]))
        Info("detector_build", "Versions of this build.", registry=r).info(build_info())
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        for kind in REJECTION_KINDS:
            self.bad_records.labels(reason=kind)
        self.totals = Totals(self.events_scored, self.alerts, self.bad_records, self.evictions)

    def metric_names(self) -> frozenset[str]:
        """Every series name /metrics can carry (`_total` of counters, histogram parts)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                    "info": ("_info",)}
        return frozenset(fam.name + suffix for fam in self.registry.collect()
                         for suffix in suffixes.get(fam.type, ("",)))

    def start(self) -> None:
        """Serve /metrics, /healthz and /readyz in a daemon thread; a no-op when the port
        is 0."""
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    # -- recording, from the poll loop ----------------------------------------------------

    def consumed(self, n: int) -> None:
        self.events_consumed.inc(n)

    def scored(self, n: int) -> None:
        self.events_scored.inc(n)

    def alert_published(self, severity: str) -> None:
        self.alerts.labels(severity=severity).inc()

    def bad_record(self, kind: str) -> None:
        """A bad record of this rejection kind (detector.engine.REJECTION_KINDS)."""
        self.bad_records.labels(reason=kind).inc()

    def batch_done(self, seconds: float) -> None:
        """A polled batch was scored in `seconds`; its alerts are with the producer (their
        delivery and the offset commit come with the next checkpoint)."""
        self.batches.inc()
        self.batch_latency.observe(seconds)

    def loop_turned(self) -> None:
        """The poll loop (or the wait for the input topic) is alive."""
        self.probes.loop_turned()

    def input_topic_missing(self, topic: str | None) -> None:
        """The input topic does not exist (None: it does)."""
        self.probes.input_topic_missing(topic)

    def broker_answered(self, at: float | None = None) -> None:
        """The broker completed a request (a commit, a heartbeat) at `at` (monotonic)."""
        self.probes.broker_answered(at)

    def observe_loop(self, consumer: Any, engines: Mapping[Any, Any]) -> int:
        """Once per poll-loop turn: liveness, lag, broker contact, streams and loss. Returns
        the lag summed over the assigned partitions (as far as fetches have told)."""
        self.probes.observe(consumer)
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:  # no fetch answered for it yet
                continue
            # timeout 0: never wait on the coordinator for another partition's position.
            position = consumer.position(tp, timeout_ms=0)
            if position is not None:
                lag = max(0, highwater - position)
                self.lag.labels(partition=str(tp.partition)).set(lag)
                total += lag
        self.live_streams.set(sum(e.streams for e in engines.values()))
        for tp, engine in engines.items():
            if math.isfinite(engine.last_train_loss):
                self.train_loss.labels(partition=str(tp.partition)).set(engine.last_train_loss)
        return total

    # -- recording, from the rebalance listener and the state layer -----------------------

    def assigned(self, partitions: Iterable[int]) -> None:
        """The group handed this member `partitions` (possibly none): a completed join is a
        round trip to the group coordinator."""
        self.probes.broker_answered()
        self.partitions.set(self.probes.assigned(partitions))

    def revoked(self, partitions: Iterable[int]) -> None:
        partitions = list(partitions)
        self.partitions.set(self.probes.revoked(partitions))
        for p in partitions:
            for gauge in (self.lag, self.train_loss):
                try:
                    gauge.remove(str(p))
                except KeyError:
                    pass

    def restoring(self, partitions: Iterable[int]) -> None:
        """These partitions' state is being built again (not ready until `restored`)."""
        self.probes.restoring(partitions)

    def restored(self, partition: int, seconds: float | None = None,
                 streams: int | None = None) -> None:
        """The partition's state is ready; with `seconds` and `streams` when it was loaded."""
        if seconds is not None:
            self.restore_duration.observe(seconds)
        if streams is not None:
            self.restored_streams.inc(streams)
        self.probes.restored(partition)

    def evicted(self, n: int) -> None:
        self.evictions.inc(n)

    def checkpoint_done(self, seconds: float) -> None:
        self.checkpoint_duration.observe(seconds)
        self.last_checkpoint.set_to_current_time()

    def checkpoint_failed(self) -> None:
        self.checkpoint_failures.inc()


def _total(counter: Counter) -> int:
    """A counter's value summed over its labels, by the public collect() of this one metric
    (the registry's would read /proc for the process collector)."""
    return int(sum(sample.value for family in counter.collect() for sample in family.samples
                   if sample.name.endswith("_total")))


def build_info() -> dict[str, str]:
    """detector_build_info's labels: this package and what it runs on."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"version": __version__, "python": platform.python_version(),
            "torch": version("torch"), "kafka_python": version("kafka-python")}
