"""Alert: what is published for an anomalous event, its deterministic id, JSON and schema."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources

import orjson

from detector.records import Coordinates, format_ts

# Fixed namespace: alert ids are uuid5(source coordinates), so re-processing the same record
# after a crash or a replay yields the same id and consumers can de-duplicate.
ALERT_NAMESPACE = uuid.UUID("5f1d3c1e-8a57-4d4e-9a62-6f0c2d9b7e11")


def alert_id(coords: Coordinates) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{coords.topic}/{coords.partition}/{coords.offset}"))


@dataclass(frozen=True)
class Alert:
    alert_id: str
    stream: str
    ts: str
    score: float
    threshold: float
    severity: str
    reconstruction_error: float
    expected: dict[str, float]
    actual: dict[str, float]
    metrics: list[dict[str, object]]  # {name, share, expected, actual}, largest share first
    model_version: str
    source: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, *, coords: Coordinates, stream: str, ts: float, score: float,
              threshold: float, severity: str, error: float, expected: dict[str, float],
              actual: dict[str, float], ranked: Sequence[tuple[str, float]],
              model_version: str) -> Alert:
        """`ranked`: (metric, share of the recent evidence) of the event's valid metrics, largest
        first (BatchResult.ranked); metrics missing from the event follow with share null."""
        shares = dict(ranked)
        order = [name for name, _ in ranked] + [n for n in expected if n not in shares]
        metrics: list[dict[str, object]] = [
            {"name": name, "share": round(shares[name], 4) if name in shares else None,
             "expected": _finite(expected.get(name, math.nan)),
             "actual": _finite(actual.get(name, math.nan))} for name in order]
        return cls(alert_id=alert_id(coords), stream=stream, ts=format_ts(ts),
                   score=round(float(score), 6), threshold=float(threshold), severity=severity,
                   reconstruction_error=float(error),
                   expected={k: _finite(v) for k, v in expected.items()},
                   actual={k: _finite(v) for k, v in actual.items()},
                   metrics=metrics, model_version=model_version,
                   source={"topic": coords.topic, "partition": coords.partition,
                           "offset": coords.offset})

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


def alert_log_fields(alert: Alert) -> dict[str, object]:
    """The alert's log line: stream, score, severity, source and the metric that contributed
    most to it (the first of its ranked metrics), with its expected and actual value."""
    fields: dict[str, object] = {
        "stream": alert.stream, "score": alert.score, "severity": alert.severity,
        "alert_id": alert.alert_id,
        "source": "{topic}[{partition}]@{offset}".format(**alert.source)}
    if alert.metrics:
        top = alert.metrics[0]
        fields.update(top_metric=top["name"], share=top["share"], expected=top["expected"],
                      actual=top["actual"])
    return fields


def _finite(v: float) -> float | None:
    return float(v) if v == v and abs(v) != float("inf") else None


def alert_schema() -> dict:
    text = resources.files("detector").joinpath("schemas/alert.schema.json").read_text()
    return json.loads(text)
