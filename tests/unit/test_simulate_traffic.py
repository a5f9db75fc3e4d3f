"""Simulated telemetry: deterministic, realistic, and incidents exactly where the plan says."""

from __future__ import annotations

import numpy as np
import pytest

from detector.simulate_traffic import METRICS, TrafficGenerator, plan_traffic


def series(plan, seed: int, steps: int) -> dict[str, dict[str, np.ndarray]]:
    gen = TrafficGenerator(plan, seed=seed)
    rows = [gen.step() for _ in range(steps)]
    return {s: {m: np.array([r[i]["metrics"][m] for r in rows]) for m in METRICS}
            for i, s in enumerate(plan.streams)}


def test_generate_with_the_same_seed_is_identical_and_differs_with_another() -> None:
    plan = plan_traffic(5, seed=1, n_steps=50)
    a = list(TrafficGenerator(plan, seed=1).events(50))
    assert a == list(TrafficGenerator(plan, seed=1).events(50))
    assert a != list(TrafficGenerator(plan, seed=2).events(50))


def test_events_carry_four_finite_non_negative_metrics_and_advance_by_the_step() -> None:
    plan = plan_traffic(4, seed=3, n_steps=30, step_seconds=60.0)
    events = list(TrafficGenerator(plan, seed=3).events(30))
    assert len(events) == 120 and len({e["stream"] for e in events}) == 4
    for i, e in enumerate(events):
        assert set(e["metrics"]) == set(METRICS)
        assert all(np.isfinite(v) and v >= 0 for v in e["metrics"].values())
        assert e["ts"] == plan.start_ts + (i // 4) * 60.0


def test_clean_stream_has_a_daily_cycle_and_correlated_metrics() -> None:
    plan = plan_traffic(3, seed=4, n_steps=288 * 3)
    data = series(plan, 4, 288 * 3)
    hours = ((np.arange(288 * 3) * 300) % 86_400) / 3600
    for s in plan.streams:
        b = data[s]["bytes_in"]
        assert b[(hours >= 13) & (hours < 17)].mean() > 1.5 * b[(hours >= 1) & (hours < 5)].mean()
        assert np.corrcoef(np.log(b), np.log(data[s]["packets_in"]))[0, 1] > 0.9
        ratio = data[s]["bytes_out"] / b
        assert ratio.std() / ratio.mean() < 0.1


@pytest.mark.parametrize("kind", ["spike", "outage", "level_shift", "ratio"])
def test_incident_changes_the_stream_where_and_how_the_plan_says(kind: str) -> None:
    plan = plan_traffic(6, seed=5, n_steps=200, incidents=[(kind, 150)])
    (incident,) = plan.incidents
    assert incident.start_index == 150 and incident.start_ts == plan.start_ts + 150 * 300
    b = series(plan, 5, 200)[incident.stream]
    before = np.median(b["bytes_in"][140:150])
    at = incident.start_index
    if kind == "spike":
        assert b["bytes_in"][at] >= 4 * before
    elif kind == "outage":
        assert b["bytes_in"][at:incident.end_index + 1].max() == 0.0
        assert b["bytes_in"][incident.end_index + 1] > 0
    elif kind == "level_shift":
        assert incident.end_index == 199
        after = np.median(b["bytes_in"][at:])
        assert after >= 2 * before or after <= before / 2
    else:
        ratio_before = np.median(b["bytes_out"][140:150] / b["bytes_in"][140:150])
        ratio_during = np.median(b["bytes_out"][at:incident.end_index + 1]
                                 / b["bytes_in"][at:incident.end_index + 1])
        assert ratio_during >= 2.5 * ratio_before
        assert 0.5 * before < np.median(b["bytes_in"][at:incident.end_index + 1]) < 2 * before


def test_plan_places_incidents_on_distinct_streams_inside_the_range() -> None:
    plan = plan_traffic(10, seed=6, n_steps=400, n_incidents=4,
                        incident_kinds=("spike", "outage", "level_shift", "ratio"),
                        earliest_index=100, latest_index=300)
    assert sorted(i.kind for i in plan.incidents) == ["level_shift", "outage", "ratio", "spike"]
    assert len({i.stream for i in plan.incidents}) == 4
    assert all(100 <= i.start_index <= 300 for i in plan.incidents)
    assert set(plan.clean_streams()) == set(plan.streams) - {i.stream for i in plan.incidents}


@pytest.mark.parametrize("kwargs", [
    {"n_streams": 0},
    {"n_streams": 2, "n_incidents": 3, "n_steps": 100},
    {"n_streams": 2, "incidents": [("meteor", 10)], "n_steps": 100},
    {"n_streams": 2, "n_incidents": 1},
    {"n_streams": 2, "n_incidents": 1, "n_steps": 100, "earliest_index": 90, "latest_index": 50},
])
def test_plan_with_invalid_arguments_raises_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        plan_traffic(seed=0, **kwargs)
