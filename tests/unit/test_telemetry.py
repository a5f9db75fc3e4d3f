"""Telemetry: probe answers over real HTTP, bounded bad-record labels, metric recording."""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import orjson
import pytest
import structlog
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from detector.daemon.telemetry import Telemetry
from detector.engine import REJECTION_KINDS, Engine, EngineConfig, Event, Rejection
from detector.errors import SettingsError
from detector.records import Limits, parse_event
from tests.conftest import REPO
from tests.integration.test_bad_input import BAD_RECORDS


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def served(free_port: int, clock: FakeClock) -> Iterator[Telemetry]:
    # CLI tests configure structlog onto pytest's captured stderr of their own, closed since.
    structlog.reset_defaults()
    telemetry = Telemetry(port=free_port, bind="127.0.0.1", stall_after_s=300,
                          broker_stale_after_s=10, clock=clock)
    telemetry.start()
    try:
        yield telemetry
    finally:
        telemetry.stop()


def get(telemetry: Telemetry, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{telemetry.port}{path}",
                                    timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(telemetry: Telemetry) -> dict[tuple[str, tuple], float]:
    _, body = get(telemetry, "/metrics")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def test_readyz_before_assignment_is_503_with_the_reason(served: Telemetry) -> None:
    served.broker_answered()
    status, body = get(served, "/readyz")
    assert status == 503
    assert orjson.loads(body)["reasons"] == ["no partition assignment yet"]


def test_readyz_once_assigned_restored_and_broker_answered_is_200(served: Telemetry) -> None:
    served.assigned([0, 2])
    served.restored(0)
    served.broker_answered()
    status, body = get(served, "/readyz")
    assert status == 503 and "partitions [2] not restored" in orjson.loads(body)["reasons"][0]
    served.restored(2, seconds=0.4, streams=120)
    assert get(served, "/readyz") == (200, b'{"status":"ready"}')
    values = samples(served)
    assert values[("detector_restore_duration_seconds_count", ())] == 1
    assert values[("detector_restored_streams_total", ())] == 120
    assert values[("detector_assigned_partitions", ())] == 2


def test_readyz_with_an_empty_assignment_is_200(served: Telemetry) -> None:
    """More members than partitions: this one legitimately holds none."""
    served.assigned([])
    served.broker_answered()
    assert get(served, "/readyz")[0] == 200


def test_readyz_after_the_broker_fell_silent_past_the_session_timeout_is_503(
        served: Telemetry, clock: FakeClock) -> None:
    served.assigned([])
    served.broker_answered()
    clock.now += 9
    assert get(served, "/readyz")[0] == 200
    clock.now += 2
    status, body = get(served, "/readyz")
    assert status == 503 and orjson.loads(body)["reasons"] == ["no broker answer for 11s"]


def test_the_loss_of_the_broker_and_its_return_are_each_logged_once(
        clock: FakeClock) -> None:
    telemetry = Telemetry(port=0, broker_stale_after_s=6, bootstrap="kafka:9092", clock=clock)
    heartbeat = SimpleNamespace(last_receive=clock.now)
    broker = SimpleNamespace(host="broker-1", port=9093)
    consumer = SimpleNamespace(
        assignment=lambda: set(), _coordinator=SimpleNamespace(
            coordinator_id=1, heartbeat=heartbeat),
        _client=SimpleNamespace(cluster=SimpleNamespace(broker_metadata={1: broker}.get)))
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):  # heartbeats answer every 1.5 s: nothing to say
            clock.now += 1.5
            heartbeat.last_receive = clock.now
            telemetry.observe_loop(consumer, {})
        consumer._coordinator.coordinator_id = None  # the broker died: the coordinator too
        for _ in range(20):
            clock.now += 1.0
            telemetry.observe_loop(consumer, {})
        assert not telemetry.probes.readiness()[0]
        for _ in range(5):
            clock.now += 1.0
            heartbeat.last_receive = clock.now
            telemetry.observe_loop(consumer, {})
    events = [(e["event"], e["log_level"], e.get("broker")) for e in logs]
    assert events == [("broker_unreachable", "warning", "broker-1:9093"),
                      ("broker_reachable_again", "warning", "broker-1:9093")]


def test_healthz_is_200_while_the_loop_turns_and_503_once_it_stalls(
        served: Telemetry, clock: FakeClock) -> None:
    consumer = SimpleNamespace(assignment=lambda: set())
    clock.now += 299
    assert get(served, "/healthz")[0] == 200
    served.observe_loop(consumer, {})
    clock.now += 299
    assert get(served, "/healthz")[0] == 200
    clock.now += 2
    status, body = get(served, "/healthz")
    assert status == 503 and orjson.loads(body)["status"] == "stalled"


def test_unknown_path_is_404(served: Telemetry) -> None:
    assert get(served, "/favicon.ico")[0] == 404


def test_observe_loop_exports_lag_streams_and_loss_and_revocation_drops_them(
        served: Telemetry) -> None:
    tp0, tp1 = TopicPartition("m", 0), TopicPartition("m", 1)
    consumer = SimpleNamespace(assignment=lambda: {tp0, tp1},
                               highwater={tp0: 120, tp1: None}.get,
                               position=lambda tp, timeout_ms: {tp0: 100, tp1: 7}[tp])
    engines = {tp0: SimpleNamespace(streams=30, last_train_loss=0.25),
               tp1: SimpleNamespace(streams=12, last_train_loss=math.nan)}
    served.assigned([0, 1])
    assert served.observe_loop(consumer, engines) == 20, "the lag it knows, summed"
    values = samples(served)
    assert values[("detector_consumer_lag", (("partition", "0"),))] == 20
    assert ("detector_consumer_lag", (("partition", "1"),)) not in values
    assert values[("detector_live_streams", ())] == 42
    assert values[("detector_model_train_loss", (("partition", "0"),))] == 0.25
    assert ("detector_model_train_loss", (("partition", "1"),)) not in values
    served.revoked([0])
    values = samples(served)
    assert ("detector_consumer_lag", (("partition", "0"),)) not in values
    assert ("detector_model_train_loss", (("partition", "0"),)) not in values


def test_recorders_count_what_they_are_told(served: Telemetry) -> None:
    served.consumed(10)
    served.scored(8)
    served.alert_published("critical")
    served.bad_record("payload")
    served.bad_record("admission")
    served.batch_done(0.2)
    served.evicted(3)
    served.checkpoint_done(1.5)
    values = samples(served)
    assert values[("detector_events_consumed_total", ())] == 10
    assert values[("detector_events_scored_total", ())] == 8
    assert values[("detector_alerts_published_total", (("severity", "critical"),))] == 1
    assert values[("detector_bad_records_total", (("reason", "payload"),))] == 1
    assert values[("detector_bad_records_total", (("reason", "admission"),))] == 1
    assert values[("detector_bad_records_total", (("reason", "key"),))] == 0
    assert values[("detector_batch_latency_seconds_count", ())] == 1
    assert values[("detector_evictions_total", ())] == 3
    assert values[("detector_checkpoint_duration_seconds_sum", ())] == 1.5
    served_names = {name for name, _ in values if not name.endswith("_created")}
    assert "detector_alerts_published_total" in served_names
    assert served_names <= served.metric_names()


def test_totals_read_back_the_counts_summed_over_their_labels(served: Telemetry) -> None:
    served.scored(8)
    served.scored(4)
    served.alert_published("critical")
    served.alert_published("warning")
    served.alert_published("warning")
    served.bad_record("payload")
    served.bad_record("admission")
    served.evicted(3)
    totals = served.totals
    counts = (totals.events, totals.alerts, totals.bad_records, totals.evictions)
    assert counts == (12, 3, 2, 3)
    assert all(type(n) is int for n in counts), "ints in the progress line, as before"


def _engine_refusal(**limits: float) -> Rejection:
    """The rejection the engine gives a second new stream under these limits."""
    engine = Engine(EngineConfig(hidden_size=4, window=2, **limits))
    result = engine.process([Event("a", 0.0, {"x": 1.0}), Event("b", 0.0, {"x": 1.0})])
    assert result.rejected[1] is not None
    return result.rejected[1]


def test_bad_records_are_counted_by_the_kind_of_their_rejection(served: Telemetry) -> None:
    kinds = [r.kind for key, value, _ in BAD_RECORDS
             if isinstance(r := parse_event(key, value, Limits()), Rejection)]
    kinds.append(_engine_refusal(admission_burst=1, admission_rate=0.01).kind)
    for kind in kinds:
        served.bad_record(kind)
    values = samples(served)
    for kind in REJECTION_KINDS:
        assert values[("detector_bad_records_total", (("reason", kind),))] == kinds.count(kind)
    assert set(kinds) >= {"key", "size", "payload", "timestamp", "metrics", "admission"}


def test_the_readme_lists_exactly_the_rejection_kinds() -> None:
    line = next(line for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("| `detector_bad_records_total"))
    listed = re.findall(r"`([a-z_]+)`", line.split("is one of", 1)[1])
    assert listed == list(REJECTION_KINDS)


def test_port_zero_serves_nothing() -> None:
    telemetry = Telemetry(port=0)
    telemetry.start()
    assert not telemetry.server.serving
    telemetry.stop()


def test_a_busy_port_is_a_settings_error_naming_the_variable(served: Telemetry) -> None:
    clash = Telemetry(port=served.port, bind="127.0.0.1")
    with pytest.raises(SettingsError, match="DETECTOR_SERVICE_METRICS_PORT"):
        clash.start()
