"""/metrics as Prometheus scrapes it: content negotiation, gzip, the standard collectors, build
info, broker contact and checkpoint failures; the input-topic reason of /readyz."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from detector import __version__
from detector.daemon.telemetry import Telemetry


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def served(free_port: int, clock: Clock) -> Iterator[Telemetry]:
    telemetry = Telemetry(port=free_port, bind="127.0.0.1", broker_stale_after_s=10,
                          clock=clock)
    telemetry.start()
    try:
        yield telemetry
    finally:
        telemetry.stop()


def fetch(telemetry: Telemetry, path: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{telemetry.port}{path}",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def values(body: bytes) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_plain_scrape_is_the_prometheus_text_format(served: Telemetry) -> None:
    status, headers, body = fetch(served, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "detector_events_consumed_total" in values(body)


def test_metrics_openmetrics_accept_header_gets_openmetrics(served: Telemetry) -> None:
    status, headers, body = fetch(served, "/metrics",
                                  Accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    names = {f.name for f in openmetrics_families(body.decode())}
    assert {"detector_events_consumed", "detector_build"} <= names


def test_metrics_gzip_accepted_gets_gzip(served: Telemetry) -> None:
    status, headers, body = fetch(served, "/metrics", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "detector_events_consumed_total" in values(gzip.decompress(body))


def test_metrics_carry_process_python_and_build_info(served: Telemetry) -> None:
    got = values(fetch(served, "/metrics")[2])
    assert got["process_resident_memory_bytes"][()] > 10_000_000
    assert got["process_open_fds"][()] > 0
    assert "python_gc_collections_total" in got and "python_info" in got
    ((labels, value),) = got["detector_build_info"].items()
    assert value == 1 and dict(labels)["version"] == __version__
    assert dict(labels)["torch"].startswith("2.") and dict(labels)["kafka_python"][0] == "3"
    assert {n for n in got if not n.endswith("_created")} <= served.metric_names()


def test_broker_connected_follows_the_readiness_judgement(served: Telemetry,
                                                           clock: Clock) -> None:
    def connected() -> float:
        return values(fetch(served, "/metrics")[2])["detector_broker_connected"][()]

    assert connected() == 0, "no answer yet"
    served.broker_answered()
    assert connected() == 1
    clock.now += 10.5
    assert connected() == 0
    assert "no broker answer for 10s" in orjson.loads(fetch(served, "/readyz")[2])["reasons"]


def test_checkpoint_failures_and_last_checkpoint_are_recorded(served: Telemetry) -> None:
    served.checkpoint_failed()
    served.checkpoint_done(0.25)
    got = values(fetch(served, "/metrics")[2])
    assert got["detector_checkpoint_failures_total"][()] == 1
    assert got["detector_last_checkpoint_timestamp_seconds"][()] > 1.7e9


def test_readyz_names_a_missing_input_topic_until_it_exists(served: Telemetry) -> None:
    served.broker_answered()
    served.assigned([])
    served.input_topic_missing("metrcis")
    status, _, body = fetch(served, "/readyz")
    assert status == 503
    assert orjson.loads(body)["reasons"] == ["input topic 'metrcis' does not exist"]
    served.input_topic_missing(None)
    assert fetch(served, "/readyz")[0] == 200
