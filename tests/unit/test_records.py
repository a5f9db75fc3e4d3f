"""Parsing raw records: good events in every accepted shape; bad input returned as a reason."""

from __future__ import annotations

import orjson
import pytest

from detector.engine import Event
from detector.records import Limits, format_ts, parse_event

LIMITS = Limits(max_event_bytes=4096, max_stream_id_length=64, max_metrics=4)


def parse(body: object, key: bytes | None = b"edge-07/eth0") -> Event | str:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_event(key, value, LIMITS)


def test_parse_event_with_iso_ts_and_metrics_returns_event() -> None:
    ev = parse({"stream": "edge-07/eth0", "ts": "2026-03-02T10:15:00Z",
                "metrics": {"bytes_in": 1.2e6, "flows": 42}})
    assert ev == Event("edge-07/eth0", 1772446500.0, {"bytes_in": 1.2e6, "flows": 42.0})


def test_parse_event_with_epoch_ts_and_value_shorthand_returns_one_metric() -> None:
    ev = parse({"ts": 1772446500.0, "value": 3})
    assert ev == Event("edge-07/eth0", 1772446500.0, {"value": 3.0})


def test_parse_event_with_naive_iso_ts_reads_it_as_utc() -> None:
    ev = parse({"ts": "2026-03-02 10:15:00", "value": 1})
    assert isinstance(ev, Event) and ev.ts == 1772446500.0


@pytest.mark.parametrize(("key", "value", "fragment"), [
    (b"s", b"{not json", "malformed JSON"),
    (b"s", b"[1, 2]", "JSON object"),
    (b"s", b'{"ts": 1, "metrics": {"x": NaN}}', "malformed JSON"),
    (b"s", b'{"metrics": {"x": 1}}', "missing field 'ts'"),
    (b"s", b'{"ts": 1}', "missing field 'metrics'"),
    (b"s", b'{"ts": "yesterday", "value": 1}', "ISO-8601"),
    (b"s", b'{"ts": true, "value": 1}', "bool"),
    (b"s", b'{"ts": 1e300, "value": 1}', "outside 1970..3000"),
    (b"s", b'{"ts": 1, "metrics": {"x": "1500"}}', "expected a number, got str"),
    (b"s", b'{"ts": 1, "metrics": {"x": true}}', "expected a number, got bool"),
    (b"s", b'{"ts": 1, "metrics": {"x": 1e300}}', "finite number"),
    (b"s", b'{"ts": 1, "metrics": {}}', "non-empty"),
    (b"s", b'{"ts": 1, "metrics": {"a":1,"b":1,"c":1,"d":1,"e":1}}', "MAX_METRICS=4"),
    (b"s", b'{"ts": 1, "value": 1, "metrics": {"x": 1}}', "either"),
    (b"s", b'{"stream": "other", "ts": 1, "value": 1}', "does not match"),
    (b"", b'{"ts": 1, "value": 1}', "missing key"),
    (None, b'{"ts": 1, "value": 1}', "missing key"),
    (b"s", None, "empty value"),
    (b"\xff\xfe", b'{"ts": 1, "value": 1}', "UTF-8"),
    (b"x" * 65, b'{"ts": 1, "value": 1}', "printable string of at most 64"),
    (b"a\nb", b'{"ts": 1, "value": 1}', "printable"),
    (b"s", b'{"ts": 1, "value": "' + b"9" * 5000 + b'"}', "exceeds DETECTOR_STATE_MAX_EVENT_BYTES"),
])
def test_parse_event_with_bad_input_returns_a_reason(key: bytes | None, value: bytes | None,
                                                      fragment: str) -> None:
    reason = parse_event(key, value, LIMITS)
    assert isinstance(reason, str) and fragment in reason


def test_format_ts_round_trips_through_parse() -> None:
    assert format_ts(1772446500.0) == "2026-03-02T10:15:00Z"
    assert format_ts(1772446500.25) == "2026-03-02T10:15:00.250Z"
