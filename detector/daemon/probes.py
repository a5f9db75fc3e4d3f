"""Liveness and readiness, and the HTTP server that answers them beside /metrics.

- `GET /metrics`: the registry, by prometheus_client's own exposition (the Prometheus text
  format or OpenMetrics as the scraper's Accept header asks, gzip when accepted);
- `GET /healthz`: 200 while the poll loop turns; 503 once it has not turned for longer than
  `max_poll_interval` (a stuck loop the broker would also evict from the group);
- `GET /readyz`: 200 once the member has joined its group, every assigned partition's state
  is restored, the input topic exists and the broker answered within the session timeout; 503
  with the JSON reasons else.

`Probes` is fed by Telemetry's recording methods (the poll loop, the rebalance listener, the
state layer); the HTTP thread only reads it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, MetricsHandler

from detector.errors import SettingsError

log = structlog.get_logger("detector.daemon.probes")

PATHS = ("/metrics", "/healthz", "/readyz")


class Probes:
    """What liveness and readiness are judged from: the loop's last turn, the group, the
    partitions' state, the input topic and the broker's last answer."""

    def __init__(self, *, stall_after_s: float = 300.0, broker_stale_after_s: float = 10.0,
                 bootstrap: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s, self.broker_stale_after_s = stall_after_s, broker_stale_after_s
        self.bootstrap = bootstrap
        self._clock = clock
        self._lock = threading.Lock()
        self._loop_turned_at = clock()
        self._broker_ok_at = -math.inf
        self._broker_reachable: bool | None = None  # None until the broker first answered
        self._coordinator = ""  # host:port of the group coordinator, as last known
        self._joined = False
        self._missing_topic: str | None = None
        self._restored: dict[int, bool] = {}

    # -- recording ------------------------------------------------------------------------

    def loop_turned(self) -> None:
        with self._lock:
            self._loop_turned_at = self._clock()

    def input_topic_missing(self, topic: str | None) -> None:
        with self._lock:
            self._missing_topic = topic

    def broker_answered(self, at: float | None = None) -> None:
        at = self._clock() if at is None else at
        with self._lock:
            self._broker_ok_at = max(self._broker_ok_at, at)

    def observe(self, consumer: Any) -> None:
        """Once per poll-loop turn: the loop is alive; the consumer's last heartbeat answer;
        the loss of the broker and its return, each logged once."""
        self.loop_turned()
        heartbeat = last_heartbeat(consumer)
        if heartbeat is not None:
            self.broker_answered(heartbeat)
        self._coordinator = coordinator_address(consumer) or self._coordinator
        self._log_broker_contact()

    def assigned(self, partitions: Iterable[int]) -> int:
        """The group handed this member `partitions`; returns how many it holds."""
        with self._lock:
            self._joined = True
            for p in partitions:
                self._restored.setdefault(p, False)
            return len(self._restored)

    def revoked(self, partitions: Iterable[int]) -> int:
        """Returns how many partitions this member still holds."""
        with self._lock:
            for p in partitions:
                self._restored.pop(p, None)
            return len(self._restored)

    def restoring(self, partitions: Iterable[int]) -> None:
        with self._lock:
            for p in partitions:
                if p in self._restored:
                    self._restored[p] = False

    def restored(self, partition: int) -> None:
        with self._lock:
            if partition in self._restored:
                self._restored[partition] = True

    def _log_broker_contact(self) -> None:
        silent = self._broker_silent_s()
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

    # -- judging --------------------------------------------------------------------------

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


class ProbeServer:
    """/metrics, /healthz and /readyz over HTTP, in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, probes: Probes, *, bind: str,
                 port: int) -> None:
        self.registry, self.probes, self.bind, self.port = registry, probes, bind, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Serve the endpoints in a daemon thread; a no-op when the port is 0."""
        if self.port == 0 or self._server is not None:
            return
        try:
            self._server = ThreadingHTTPServer((self.bind, self.port),
                                               _handler(self.registry, self.probes))
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


def last_heartbeat(consumer: Any) -> float | None:
    """Monotonic time of the last answered group heartbeat, or None before the first.

    kafka-python has no public accessor; its group coordinator keeps this timestamp for the
    session-timeout check, which is exactly the "broker answers us" signal readiness needs.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    heartbeat = getattr(coordinator, "heartbeat", None)
    received = getattr(heartbeat, "last_receive", None)
    return received if received is not None and math.isfinite(received) else None


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


def _handler(metrics: CollectorRegistry, probes: Probes) -> type[BaseHTTPRequestHandler]:
    class Handler(MetricsHandler):
        registry = metrics

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                super().do_GET()
            elif path in ("/healthz", "/readyz"):
                ok, body = probes.health() if path == "/healthz" else probes.readiness()
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
