"""Parsing raw records: good events in every accepted shape; bad input returned as a reason."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.engine import Event, Rejection
from detector.records import (
    DLQ_KEY_BYTES,
    DLQ_PAYLOAD_BYTES,
    BadRecord,
    Coordinates,
    Limits,
    format_ts,
    parse_event,
)

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
    (b"s", b'{"ts": 1, "metrics": {"": 1}}', "metric name '' is empty"),
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
    assert isinstance(reason, Rejection) and fragment in reason.detail


def test_format_ts_round_trips_through_parse() -> None:
    assert format_ts(1772446500.0) == "2026-03-02T10:15:00Z"
    assert format_ts(1772446500.25) == "2026-03-02T10:15:00.250Z"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.none(), st.binary(max_size=80)), value=st.one_of(st.none(), st.binary()))
def test_parse_event_with_any_bytes_returns_event_or_reason(key: bytes | None,
                                                            value: bytes | None) -> None:
    assert isinstance(parse_event(key, value, LIMITS), Event | Rejection)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.sampled_from(["stream", "ts", "metrics", "value", "x"]),
                            JSON_VALUES, max_size=5))
def test_parse_event_with_any_json_object_returns_event_or_reason(body: dict) -> None:
    value = json.dumps(body).encode()  # big integers, NaN and Infinity tokens included
    assert isinstance(parse_event(b"edge-07/eth0", value, LIMITS), Event | Rejection)


def test_dead_letter_of_a_giant_key_stays_small_enough_to_deliver() -> None:
    bad = BadRecord(Rejection("key", "stream id too long"), Coordinates("metrics", 3, 17),
                    b"k" * 700_000,
                    b"v" * 100_000)
    key, value = bad.dead_letter()
    entry = orjson.loads(value)
    assert key == b"k" * DLQ_KEY_BYTES
    assert len(value) < DLQ_KEY_BYTES + DLQ_PAYLOAD_BYTES + 512
    assert entry["key_truncated"] and entry["payload_truncated"]
    assert entry["source"] == {"topic": "metrics", "partition": 3, "offset": 17}


def test_dead_letter_of_binary_garbage_keeps_coordinates_and_a_readable_excerpt() -> None:
    bad = BadRecord(Rejection("key", "key is not valid UTF-8"), Coordinates("m", 0, 5),
                    b"\xff\xfe", None)
    key, value = bad.dead_letter()
    entry = orjson.loads(value)
    assert key == b"\xff\xfe"
    assert entry["key"] == "\ufffd\ufffd" and entry["payload"] is None
    assert entry["kind"] == "key" and entry["error"] == "key is not valid UTF-8"
    assert not entry["key_truncated"] and not entry["payload_truncated"]
