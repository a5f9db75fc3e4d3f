"""A seeded fuzzer of poison pills: bad records of every kind, each with the reason expected.

Every generator returns a record the daemon must dead-letter; `reason` is a fragment its
dead-letter error must contain ("" where the garbage is random and any reason will do).
Keys are mostly the ids of good streams, so bad records land among the good ones of the
same partitions.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import orjson

TS = 1_772_409_600


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass(frozen=True)
class Limits:
    """The daemon's limits in the test, and the good streams with their metrics."""

    max_event_bytes: int
    max_stream_id_length: int
    max_metrics: int
    streams: tuple[str, ...]
    metrics: tuple[str, ...]


def _key(rng: random.Random, lim: Limits) -> bytes:
    return rng.choice(lim.streams).encode()


def _event(rng: random.Random, lim: Limits, **fields: object) -> dict:
    body: dict = {"ts": TS + rng.randrange(10**6),
                  "metrics": {m: rng.uniform(0, 1e6) for m in lim.metrics}}
    body.update(fields)
    return body


def _with_metric(rng: random.Random, lim: Limits, value: object) -> dict:
    return _event(rng, lim, metrics={lim.metrics[0]: value})


def malformed_json(rng: random.Random, lim: Limits) -> Poison:
    text = rng.choice([
        b"{", b"}", b'{"ts": }', b"{'ts': 1, 'value': 2}", b'{"ts": 1, "value": 2,}',
        b'{"ts" 1}', b'{"ts": 1 "value": 2}', b"{ts: 1}", b'{"ts": 01, "value": 1}',
        b'{"ts": 1, "value": 0x10}', b'{"ts": 1, "value": .5}', b'{"a": "\\x"}',
        b'{"ts": 1, "value": 1}{"ts": 2, "value": 2}', b'{"ts": 1, "value": tru}',
    ])
    return Poison("malformed_json", _key(rng, lim), text, "malformed JSON")


def truncated_json(rng: random.Random, lim: Limits) -> Poison:
    whole = orjson.dumps(_event(rng, lim))
    return Poison("truncated_json", _key(rng, lim), whole[:rng.randrange(1, len(whole))],
                  "malformed JSON")


WRONG_VALUES: list[object] = [True, False, "1500", "", "NaN", [], [1], {}, {"v": 1}, None]


def wrong_type(rng: random.Random, lim: Limits) -> Poison:
    wrong = rng.choice(WRONG_VALUES)
    field = rng.choice(["ts", "metrics", "value", "metric", "stream"])
    if field == "ts":
        body, reason = _event(rng, lim, ts=wrong), "ts"
    elif field == "metrics":
        wrong = rng.choice([w for w in WRONG_VALUES if not isinstance(w, dict) or not w])
        body, reason = _event(rng, lim, metrics=wrong), "metrics"
    elif field == "value":
        body, reason = {"ts": TS, "value": wrong}, "metric 'value'"
    elif field == "metric":
        body, reason = _with_metric(rng, lim, wrong), f"metric {lim.metrics[0]!r}"
    else:
        body, reason = _event(rng, lim, stream=wrong), "does not match"
    return Poison(f"wrong_type_{field}", _key(rng, lim), orjson.dumps(body), reason)


def non_finite_token(rng: random.Random, lim: Limits) -> Poison:
    token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
    where = rng.choice([b'{"ts": %s, "value": 1}', b'{"ts": 1772409600, "value": %s}',
                        b'{"ts": 1772409600, "metrics": {"bytes_in": %s}}'])
    return Poison("non_finite_token", _key(rng, lim), where % token, "malformed JSON")


def huge_number(rng: random.Random, lim: Limits) -> Poison:
    number, reason = rng.choice([
        (b"1e309", "malformed JSON"), (b"-1e309", "malformed JSON"),
        (str(10**400).encode(), "malformed JSON"), (str(-(10**400)).encode(), "malformed JSON"),
        (b"1e19", "finite number"), (b"-1e300", "finite number"),
        (b"18446744073709551616", "finite number"), (b"1.7976931348623157e308", "finite"),
    ])
    return Poison("huge_number", _key(rng, lim),
                  b'{"ts": 1772409600, "metrics": {"bytes_in": %s}}' % number, reason)


def nested_garbage(rng: random.Random, lim: Limits) -> Poison:
    depth = rng.choice([2, 10, 100, 2_000])
    nest = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
    value = b'{"ts": 1772409600, "metrics": {"bytes_in": %s}}' % nest.encode()
    return Poison("nested_garbage", _key(rng, lim), value[:lim.max_event_bytes], "")


def empty_value(rng: random.Random, lim: Limits) -> Poison:
    value, reason = rng.choice([
        (None, "empty value"), (b"", "malformed JSON"), (b"{}", "missing field 'ts'"),
        (b"null", "JSON object"), (b'""', "JSON object"), (b"[]", "JSON object"),
        (b" ", "malformed JSON"), (b'{"ts": 1772409600}', "missing field 'metrics'"),
        (b'{"ts": 1772409600, "metrics": {}}', "non-empty"),
        (b'{"ts": 1772409600, "metrics": {"": 1}}', "metric name"),
        (b'{"ts": "", "value": 1}', "ISO-8601"),
    ])
    return Poison("empty_value", _key(rng, lim), value, reason)


def null_key(rng: random.Random, lim: Limits) -> Poison:
    if rng.random() < 0.2:  # a record needs a key or a value: the empty key with no value
        return Poison("null_key", b"", None, "missing key")
    return Poison("null_key", rng.choice([None, b""]), orjson.dumps(_event(rng, lim)),
                  "missing key")


def binary_garbage(rng: random.Random, lim: Limits) -> Poison:
    value = rng.randbytes(rng.randrange(1, 2_000))
    if rng.random() < 0.3:
        return Poison("binary_key", b"\xff\xfe" + rng.randbytes(8), value, "UTF-8")
    return Poison("binary_value", _key(rng, lim), value, "")


def oversize(rng: random.Random, lim: Limits) -> Poison:
    pad = "x" * rng.randrange(lim.max_event_bytes, 3 * lim.max_event_bytes)
    return Poison("oversize", _key(rng, lim), orjson.dumps(_event(rng, lim, pad=pad)),
                  "exceeds DETECTOR_STATE_MAX_EVENT_BYTES")


def absurd_stream_id(rng: random.Random, lim: Limits) -> Poison:
    body = orjson.dumps({"ts": TS, "value": 1})
    choice = rng.randrange(3)
    if choice == 0:
        key = "s" * rng.randrange(lim.max_stream_id_length + 1, 4 * lim.max_stream_id_length)
    else:
        control = rng.choice(["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\u2028", "\x85"])
        stem = "".join(rng.choices(string.ascii_letters, k=8))
        key = stem[:4] + control + stem[4:]
    return Poison("absurd_stream_id", key.encode(), body, "stream id")


def giant_key(rng: random.Random, lim: Limits) -> Poison:
    """A key far over the stream id limit: its dead-letter entry must still be deliverable."""
    return Poison("giant_key", b"k" * 700_000, orjson.dumps({"ts": TS, "value": 1}),
                  "stream id")


def too_many_metrics(rng: random.Random, lim: Limits) -> Poison:
    n = rng.randrange(lim.max_metrics + 1, lim.max_metrics + 40)
    return Poison("too_many_metrics", _key(rng, lim),
                  orjson.dumps(_event(rng, lim, metrics={f"m{i}": i for i in range(n)})),
                  f"more than DETECTOR_MODEL_MAX_METRICS={lim.max_metrics}")


def unknown_metric(rng: random.Random, lim: Limits) -> Poison:
    """Well-formed, but names a metric the (already known) stream never had."""
    metrics = {lim.metrics[0]: 1.0, rng.choice(["cpu", "errors", "bytes_IN", "x"]): 2.0}
    return Poison("unknown_metric", _key(rng, lim),
                  orjson.dumps(_event(rng, lim, metrics=metrics)), "unknown metrics")


def bad_metric_name(rng: random.Random, lim: Limits) -> Poison:
    name = rng.choice(["a\x00b", "tab\there", "n" * 500, "\x1b[31mred"])
    return Poison("bad_metric_name", _key(rng, lim),
                  orjson.dumps(_event(rng, lim, metrics={name: 1.0})), "metric name")


def ts_out_of_range(rng: random.Random, lim: Limits) -> Poison:
    ts = rng.choice([-1, -1e9, 0.0 - 1e-3, 3.3e10, 1e12, 1e300, "1969-12-31T23:59:59Z",
                     "3001-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59",
                     "9999-12-31T23:59:59-23:59"])
    return Poison("ts_out_of_range", _key(rng, lim), orjson.dumps(_event(rng, lim, ts=ts)),
                  "outside 1970..3000")


def mutated(rng: random.Random, lim: Limits) -> Poison:
    """A good event with a structural character flipped into another: never valid JSON."""
    whole = bytearray(orjson.dumps(_event(rng, lim)))
    at = rng.choice([i for i, c in enumerate(whole) if c in b'{}":,'])
    whole[at] = rng.choice([c for c in b"{}[]\\'" if c != whole[at]])
    return Poison("mutated", _key(rng, lim), bytes(whole), "")


GENERATORS: list[Callable[[random.Random, Limits], Poison]] = [
    malformed_json, truncated_json, wrong_type, non_finite_token, huge_number, nested_garbage,
    empty_value, null_key, binary_garbage, oversize, absurd_stream_id, too_many_metrics,
    unknown_metric, bad_metric_name, ts_out_of_range, mutated,
]


def poison_pills(n: int, lim: Limits, *, seed: int) -> list[Poison]:
    """n bad records cycling through every kind (two giant keys among them)."""
    rng = random.Random(seed)
    pills = [GENERATORS[i % len(GENERATORS)](rng, lim) for i in range(n - 2)]
    return pills + [giant_key(rng, lim), giant_key(rng, lim)]
