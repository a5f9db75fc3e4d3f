"""Raw Kafka record → Event, or a Rejection saying why it is bad input (returned as data, never
raised); the bounded dead-letter entry of a bad record.

Input contract: key = stream id (UTF-8), value = JSON object
`{"stream": id?, "ts": ISO-8601 | epoch seconds, "metrics": {name: number, ...}}`,
or `"value": number` as shorthand for a single metric named "value".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from detector.engine import Event
from detector.engine.types import Rejection

MAX_ABS_VALUE = 1e18           # larger magnitudes are corrupt counters, not traffic
MAX_METRIC_NAME_LENGTH = 128
MIN_TS, MAX_TS = 0.0, 32_503_680_000.0  # 1970 .. 3000
# A dead-letter entry stays far below the producer's 1 MB request limit whatever the bad
# record carried: an unbounded key would make the entry undeliverable and stop the daemon.
DLQ_PAYLOAD_BYTES = 4_096
DLQ_KEY_BYTES = 16_384  # any stream id the settings allow (4,096 characters) fits whole


@dataclass(frozen=True, slots=True)
class Coordinates:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class BadRecord:
    reason: Rejection
    coords: Coordinates
    key: bytes | None
    value: bytes | None

    def dead_letter(self) -> tuple[bytes | None, bytes]:
        """Key and JSON value of this record's dead-letter entry, both bounded in size."""
        body = {
            "error": self.reason.detail,
            "kind": self.reason.kind,
            "source": {"topic": self.coords.topic, "partition": self.coords.partition,
                       "offset": self.coords.offset},
            "key": _excerpt(self.key, DLQ_KEY_BYTES),
            "key_truncated": self.key is not None and len(self.key) > DLQ_KEY_BYTES,
            "payload": _excerpt(self.value, DLQ_PAYLOAD_BYTES),
            "payload_truncated": self.value is not None and len(self.value) > DLQ_PAYLOAD_BYTES,
        }
        return (self.key[:DLQ_KEY_BYTES] if self.key else None), orjson.dumps(body)


def _excerpt(raw: bytes | None, limit: int) -> str | None:
    return raw[:limit].decode("utf-8", "replace") if raw is not None else None


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = 65_536
    max_stream_id_length: int = 256
    max_metrics: int = 64


def parse_event(key: bytes | None, value: bytes | None, limits: Limits) -> Event | Rejection:
    """The event a record carries, or why it is bad input."""
    if not key:
        return Rejection("key", "missing key: the record key must be the stream id")
    if value is None:
        return Rejection("payload", "empty value")
    if len(value) > limits.max_event_bytes:
        return Rejection("size", f"record of {len(value)} bytes exceeds "
                                 f"DETECTOR_STATE_MAX_EVENT_BYTES={limits.max_event_bytes}")
    try:
        stream = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("key", "key is not valid UTF-8")
    if len(stream) > limits.max_stream_id_length or not stream.isprintable():
        return Rejection("key", f"stream id {stream[:64]!r} is not a printable string of at "
                                f"most {limits.max_stream_id_length} characters")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection("payload", f"malformed JSON: {exc}")
    if not isinstance(body, dict):
        return Rejection("payload", f"event must be a JSON object, got {type(body).__name__}")
    named = body.get("stream", stream)
    if named != stream:
        return Rejection("key", f"key {stream!r} does not match the event's stream "
                                f"{str(named)[:64]!r}")
    ts = parse_ts(body.get("ts"))
    if isinstance(ts, str):
        return Rejection("timestamp", ts)
    metrics = _parse_metrics(body, limits.max_metrics)
    if isinstance(metrics, str):
        return Rejection("metrics", metrics)
    return Event(stream, ts, metrics)


def parse_ts(raw: object) -> float | str:
    if raw is None:
        return "missing field 'ts'"
    if isinstance(raw, bool):
        return "ts: expected ISO-8601 text or epoch seconds, got bool"
    if isinstance(raw, int | float):
        return _within_range(float(raw))
    if isinstance(raw, str):
        return _parse_iso_ts(raw)
    return f"ts: expected ISO-8601 text or epoch seconds, got {type(raw).__name__}"


@functools.lru_cache(maxsize=4_096)  # the events of one moment share their timestamp text
def _parse_iso_ts(raw: str) -> float | str:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return f"ts: {raw[:40]!r} is not an ISO-8601 timestamp"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _within_range(moment.timestamp())


def _within_range(ts: float) -> float | str:
    if not (math.isfinite(ts) and MIN_TS <= ts <= MAX_TS):
        return f"ts: {ts!r} is outside 1970..3000"
    return ts


def _parse_metrics(body: dict, max_metrics: int) -> dict[str, float] | str:
    if "metrics" in body and "value" in body:
        return "give either 'metrics' or 'value', not both"
    if "value" in body:
        raw = {"value": body["value"]}
    elif "metrics" in body:
        raw = body["metrics"]
        if not isinstance(raw, dict) or not raw:
            return "metrics: expected a non-empty JSON object of name → number"
    else:
        return "missing field 'metrics' (or 'value')"
    if len(raw) > max_metrics:
        return f"{len(raw)} metrics, more than DETECTOR_MODEL_MAX_METRICS={max_metrics}"
    # One pass with the cheapest checks that pass good input; anything else goes through
    # the per-metric checks, which name the offending metric.
    metrics: dict[str, float] = {}
    for name, v in raw.items():
        if type(v) not in _NUMBER or not -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE:  # NaN fails
            return _check_metrics(raw)
        metrics[name] = float(v)
    return metrics if _names_ok(tuple(metrics)) else _check_metrics(raw)


_NUMBER = frozenset((int, float))  # exact types: bool is not a number here


@functools.lru_cache(maxsize=1_024)  # a stream sends the same metric names every time
def _names_ok(names: tuple[str, ...]) -> bool:
    return all(name and len(name) <= MAX_METRIC_NAME_LENGTH and name.isprintable()
               for name in names)


def _check_metrics(raw: dict) -> dict[str, float] | str:
    metrics: dict[str, float] = {}
    for name, v in raw.items():
        if not name or len(name) > MAX_METRIC_NAME_LENGTH or not name.isprintable():
            return f"metric name {name[:40]!r} is empty, not printable or too long"
        if isinstance(v, bool) or not isinstance(v, int | float):
            return f"metric {name!r}: expected a number, got {type(v).__name__}"
        f = float(v)
        if not math.isfinite(f) or abs(f) > MAX_ABS_VALUE:
            return f"metric {name!r}: value {v!r} is not a finite number within ±1e18"
        metrics[name] = f
    return metrics


def format_ts(ts: float) -> str:
    """Epoch seconds → ISO-8601 UTC with a Z suffix (milliseconds only when present)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
