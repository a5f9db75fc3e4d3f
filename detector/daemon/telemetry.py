"""The daemon's operability surface: Prometheus metrics, liveness and readiness over HTTP.

`Telemetry` owns a private CollectorRegistry (no process-wide default registry, so several
daemons in one process never collide) and a small HTTP server in a daemon thread:

- `GET /metrics`: the registry, by prometheus_client's own exposition (the Prometheus text
  format or OpenMetrics as the scraper's Accept header asks, gzip when accepted), with the
  process and Python collectors beside the daemon's metrics;
- `GET /healthz`: 200 while the poll loop turns; 503 once it has not turned for longer than
  `max_poll_interval` (a stuck loop the broker would also evict from the group);
- `GET /readyz`: 200 once the member has joined its group, every assigned partition's state
  is restored, the input topic exists and the broker answered within the session timeout; 503
  with the JSON reasons else.

The daemon calls the recording methods from its poll loop and rebalance listener; the HTTP
thread only reads. Lag, live streams and training loss are sampled in the loop thread after
each poll, because the Kafka consumer and the engines are not safe to touch from another one.
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any

import orjson
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    MetricsHandler,
    PlatformCollector,
    ProcessCollector,
)

from detector import __version__
from detector.engine.types import REJECTION_KINDS
from detector.errors import SettingsError
from detector.settings import Settings

log = structlog.get_logger("detector.daemon.telemetry")

PATHS = ("/metrics", "/healthz", "/readyz")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Telemetry:
    """Metrics registry, probe state and the HTTP server that exposes both."""

    def __init__(self, *, port: int, bind: str = "0.0.0.0",  # noqa: S104 - scraped remotely
                 stall_after_s: float = 300.0, broker_stale_after_s: float = 10.0,
                 bootstrap: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.port, self.bind, self.bootstrap = port, bind, bootstrap
        self.stall_after_s, self.broker_stale_after_s = stall_after_s, broker_stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._loop_turned_at = clock()
        self._broker_ok_at = -math.inf
        self._broker_reachable: bool | None = None  # None until the broker first answered
        self._coordinator = ""  # host:port of the group coordinator, as last known
        self._joined = False
        self._missing_topic: str | None = None
        self._restored: dict[int, bool] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self._define_metrics()

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
        self.batches = Counter("detector_batches", "Batches processed and committed.",
                               registry=r)
        self.batch_latency = Histogram("detector_batch_latency_seconds", "From the poll that "
                                       "returned a batch to its offsets committed.",
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
        broker.set_function(lambda: float(self.broker_connected()))
        ready = Gauge("detector_ready", "1 while /readyz answers 200, else 0.", registry=r)
        ready.set_function(lambda: float(self.readiness()[0]))
        Info("detector_build", "Versions of this build.", registry=r).info(build_info())
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        for kind in REJECTION_KINDS:
            self.bad_records.labels(reason=kind)

    def metric_names(self) -> frozenset[str]:
        """Every series name /metrics can carry (`_total` of counters, histogram parts)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                    "info": ("_info",)}
        return frozenset(fam.name + suffix for fam in self.registry.collect()
                         for suffix in suffixes.get(fam.type, ("",)))

    # -- the HTTP server ------------------------------------------------------------------

    def start(self) -> None:
        """Serve the endpoints in a daemon thread; a no-op when the port is 0."""
        if self.port == 0 or self._server is not None:
            return
        try:
            self._server = ThreadingHTTPServer((self.bind, self.port), _handler(self))
        except OSError as exc:
            raise SettingsError(f"DETECTOR_SERVICE_METRICS_PORT: cannot listen on "
                                f"{self.bind}:{self.port} ({exc.strerror or exc})") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="telemetry-http", daemon=True)
        self._thread.start()
        log.info("telemetry_serving", address=f"{self.bind}:{self.port}", paths=list(PATHS))

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

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
        self.batches.inc()
        self.batch_latency.observe(seconds)

    def loop_turned(self) -> None:
        """The poll loop (or the wait for the input topic) is alive."""
        with self._lock:
            self._loop_turned_at = self._clock()

    def input_topic_missing(self, topic: str | None) -> None:
        """The input topic does not exist (None: it does)."""
        with self._lock:
            self._missing_topic = topic

    def broker_answered(self, at: float | None = None) -> None:
        """The broker completed a request (a commit, a heartbeat) at `at` (monotonic)."""
        at = self._clock() if at is None else at
        with self._lock:
            self._broker_ok_at = max(self._broker_ok_at, at)

    def observe_loop(self, consumer: Any, engines: Mapping[Any, Any]) -> int:
        """Once per poll-loop turn: liveness, lag, broker contact, streams and loss. Returns
        the lag summed over the assigned partitions (as far as fetches have told)."""
        self.loop_turned()
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
        heartbeat = last_heartbeat(consumer)
        if heartbeat is not None:
            self.broker_answered(heartbeat)
        self._coordinator = coordinator_address(consumer) or self._coordinator
        self._log_broker_contact()
        self.live_streams.set(sum(len(e.arena) for e in engines.values()))
        for tp, engine in engines.items():
            if math.isfinite(engine.last_train_loss):
                self.train_loss.labels(partition=str(tp.partition)).set(engine.last_train_loss)
        return total

    def _log_broker_contact(self) -> None:
        """The loss of the broker and its return, each logged once."""
        with self._lock:
            silent = self._clock() - self._broker_ok_at
        reachable = silent <= self.broker_stale_after_s
        if reachable == self._broker_reachable or (self._broker_reachable is None
                                                    and not reachable):
            return
        address = self._coordinator or self.bootstrap
        if self._broker_reachable is not None:
            if reachable:
                log.warning("broker_reachable_again", broker=address)
            else:
                log.warning("broker_unreachable", broker=address, silent_s=round(silent, 1),
                            session_timeout_s=self.broker_stale_after_s)
        self._broker_reachable = reachable

    # -- recording, from the rebalance listener and the state layer -----------------------

    def assigned(self, partitions: Iterable[int]) -> None:
        """The group handed this member `partitions` (possibly none): a completed join is a
        round trip to the group coordinator."""
        self.broker_answered()
        with self._lock:
            self._joined = True
            for p in partitions:
                self._restored.setdefault(p, False)
            self.partitions.set(len(self._restored))

    def revoked(self, partitions: Iterable[int]) -> None:
        with self._lock:
            for p in partitions:
                self._restored.pop(p, None)
                for gauge in (self.lag, self.train_loss):
                    try:
                        gauge.remove(str(p))
                    except KeyError:
                        pass
            self.partitions.set(len(self._restored))

    def restoring(self, partitions: Iterable[int]) -> None:
        """These partitions' state is being built again (not ready until `restored`)."""
        with self._lock:
            for p in partitions:
                if p in self._restored:
                    self._restored[p] = False

    def restored(self, partition: int, seconds: float | None = None,
                 streams: int | None = None) -> None:
        """The partition's state is ready; with `seconds` and `streams` when it was loaded."""
        if seconds is not None:
            self.restore_duration.observe(seconds)
        if streams is not None:
            self.restored_streams.inc(streams)
        with self._lock:
            if partition in self._restored:
                self._restored[partition] = True

    def evicted(self, n: int) -> None:
        self.evictions.inc(n)

    def checkpoint_done(self, seconds: float) -> None:
        self.checkpoint_duration.observe(seconds)
        self.last_checkpoint.set_to_current_time()

    def checkpoint_failed(self) -> None:
        self.checkpoint_failures.inc()

    # -- probes ---------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            idle = self._clock() - self._loop_turned_at
        if idle > self.stall_after_s:
            return False, {"status": "stalled",
                           "reason": f"poll loop has not turned for {idle:.0f}s "
                                     f"(limit {self.stall_after_s:g}s)"}
        return True, {"status": "ok"}

    def _broker_silent_s(self) -> float:
        with self._lock:
            return self._clock() - self._broker_ok_at

    def broker_connected(self) -> bool:
        """The broker answered within the session timeout: the one judgement of broker
        contact, for /readyz and the detector_broker_connected gauge."""
        return self._broker_silent_s() <= self.broker_stale_after_s

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            joined, pending = self._joined, sorted(p for p, ok in self._restored.items()
                                                   if not ok)
            missing = self._missing_topic
        silent = self._broker_silent_s()
        reasons = []
        if missing is not None:
            reasons.append(f"input topic {missing!r} does not exist")
        if not joined:
            reasons.append("no partition assignment yet")
        if pending:
            reasons.append(f"state of partitions {pending} not restored")
        if not self.broker_connected():
            reasons.append("no broker answer " + (f"for {silent:.0f}s" if math.isfinite(silent)
                                                  else "yet"))
        if reasons:
            return False, {"status": "not ready", "reasons": reasons}
        return True, {"status": "ready"}


def last_heartbeat(consumer: Any) -> float | None:
    """Monotonic time of the last answered group heartbeat, or None before the first.

    kafka-python has no public accessor; its group coordinator keeps this timestamp for the
    session-timeout check, which is exactly the "broker answers us" signal readiness needs.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    heartbeat = getattr(coordinator, "heartbeat", None)
    received = getattr(heartbeat, "last_receive", None)
    return received if received is not None and math.isfinite(received) else None


def build_info() -> dict[str, str]:
    """detector_build_info's labels: this package and what it runs on."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"version": __version__, "python": platform.python_version(),
            "torch": version("torch"), "kafka_python": version("kafka-python")}


def coordinator_address(consumer: Any) -> str | None:
    """host:port of the consumer's group coordinator, when it knows one (private attributes of
    kafka-python, read defensively: a log line is all that depends on them)."""
    coordinator = getattr(consumer, "_coordinator", None)
    node = getattr(coordinator, "coordinator_id", None)
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    if node is None or cluster is None:
        return None
    try:
        broker = cluster.broker_metadata(node)
    except Exception:  # noqa: BLE001
        return None
    return f"{broker.host}:{broker.port}" if broker is not None else None


def _handler(telemetry: Telemetry) -> type[BaseHTTPRequestHandler]:
    class Handler(MetricsHandler):
        registry = telemetry.registry

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                super().do_GET()
            elif path in ("/healthz", "/readyz"):
                ok, body = telemetry.health() if path == "/healthz" else telemetry.readiness()
                self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                           orjson.dumps(body), "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, b'{"status": "not found"}',
                           "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes and probes every few seconds would drown the daemon's own log."""

    return Handler
