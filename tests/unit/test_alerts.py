"""Alert ids are deterministic from source coordinates; alert JSON matches its schema."""

from __future__ import annotations

import jsonschema
import orjson

from detector.alerts import Alert, alert_id, alert_schema
from detector.records import Coordinates


def make_alert(offset: int = 17) -> Alert:
    return Alert.build(coords=Coordinates("metrics", 2, offset), stream="edge-07/eth0",
                       ts=1772446500.0, score=0.93, threshold=0.5, severity="critical",
                       error=12.5, expected={"bytes_in": 1.2e6, "flows": 41.0},
                       actual={"bytes_in": 1.3e6, "flows": 330.0},
                       ranked=[("flows", 0.97), ("bytes_in", 0.03)], model_version="lstm-ae/test")


def test_alert_id_for_the_same_coordinates_is_the_same_and_differs_otherwise() -> None:
    assert alert_id(Coordinates("metrics", 2, 17)) == alert_id(Coordinates("metrics", 2, 17))
    assert alert_id(Coordinates("metrics", 2, 17)) != alert_id(Coordinates("metrics", 2, 18))
    assert alert_id(Coordinates("metrics", 2, 17)) != alert_id(Coordinates("metrics", 3, 17))


def test_alert_json_validates_against_the_published_schema() -> None:
    body = orjson.loads(make_alert().to_json())
    jsonschema.validate(body, alert_schema())
    assert body["ts"] == "2026-03-02T10:15:00Z"
    assert body["source"] == {"topic": "metrics", "partition": 2, "offset": 17}
    assert body["metrics"] == [
        {"name": "flows", "share": 0.97, "expected": 41.0, "actual": 330.0},
        {"name": "bytes_in", "share": 0.03, "expected": 1.2e6, "actual": 1.3e6}]


def test_alert_with_non_finite_expectation_serialises_null_and_still_validates() -> None:
    alert = Alert.build(coords=Coordinates("m", 0, 1), stream="s", ts=0.0, score=1.0,
                        threshold=0.5, severity="critical", error=1.0,
                        expected={"x": float("nan")}, actual={"x": float("inf")},
                        ranked=[], model_version="v")
    body = orjson.loads(alert.to_json())
    assert body["expected"] == {"x": None} and body["actual"] == {"x": None}
    assert body["metrics"] == [{"name": "x", "share": None, "expected": None, "actual": None}]
    jsonschema.validate(body, alert_schema())
