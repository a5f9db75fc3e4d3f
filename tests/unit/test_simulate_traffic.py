"""Simulated telemetry: deterministic, realistic, and incidents exactly where the plan says."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.sim.traffic import (
    INCIDENT_KINDS,
    METRICS,
    OPEN_END_INDEX,
    TrafficGenerator,
    TrafficPlan,
    plan_traffic,
)

STEPS_PER_DAY = 288  # 5-minute steps
STREAM_ID = re.compile(r"^((edge|core|db)-\d{2,}/(eth\d|bond0)|svc-[a-z]+-\d+/lb)$")


def series(plan: TrafficPlan, steps: int, seed: int = 7) -> dict[str, dict[str, np.ndarray]]:
    """Per stream, per metric: the values of `steps` steps."""
    gen = TrafficGenerator(plan, seed=seed)
    rows = [gen.step() for _ in range(steps)]
    return {s: {m: np.array([row[i]["metrics"][m] for row in rows]) for m in METRICS}
            for i, s in enumerate(plan.streams)}


def with_and_without(kind: str, start: int, steps: int, seed: int = 7):
    """One incident on a plan, its stream's series, and the same series without the incident."""
    plan = plan_traffic(6, seed=seed, n_steps=steps, incidents=[(kind, start)])
    (incident,) = plan.incidents
    hit = series(plan, steps, seed)[incident.stream]
    clean = series(dataclasses.replace(plan, incidents=()), steps, seed)[incident.stream]
    return incident, hit, clean


def test_generate_with_the_same_seed_is_identical_and_differs_with_another() -> None:
    plan = plan_traffic(5, seed=1, n_steps=50, n_incidents=2)
    a = list(TrafficGenerator(plan, seed=1).events(50))
    assert a == list(TrafficGenerator(plan, seed=1).events(50))
    assert a != list(TrafficGenerator(plan, seed=2).events(50))


def test_plan_with_the_same_seed_is_identical_and_differs_with_another() -> None:
    assert plan_traffic(40, seed=3, n_steps=100, n_incidents=3) == plan_traffic(
        40, seed=3, n_steps=100, n_incidents=3)
    assert plan_traffic(40, seed=3).streams != plan_traffic(40, seed=4).streams


def test_plan_streams_are_unique_realistic_ids_even_for_thousands() -> None:
    streams = plan_traffic(3_000, seed=5).streams
    assert len(streams) == len(set(streams)) == 3_000
    assert all(STREAM_ID.match(s) for s in streams), [s for s in streams if not STREAM_ID.match(s)]
    assert {s.split("-")[0] for s in streams} == {"edge", "core", "db", "svc"}


def test_events_carry_four_finite_non_negative_metrics_and_advance_by_the_step() -> None:
    plan = plan_traffic(4, seed=3, n_steps=30, step_seconds=60.0, start_ts=1_000.0)
    events = list(TrafficGenerator(plan, seed=3).events(30))
    assert len(events) == 120
    for i, e in enumerate(events):
        assert e["stream"] == plan.streams[i % 4]
        assert e["ts"] == 1_000.0 + (i // 4) * 60.0 and isinstance(e["ts"], float)
        assert set(e["metrics"]) == set(METRICS)
        assert all(isinstance(v, float) and np.isfinite(v) and v >= 0
                   for v in e["metrics"].values())
        assert e["metrics"]["packets_in"].is_integer() and e["metrics"]["flows"].is_integer()


def test_generate_step_by_step_continues_where_events_stopped() -> None:
    plan = plan_traffic(3, seed=2, n_steps=10)
    whole = list(TrafficGenerator(plan, seed=2).events(10))
    gen = TrafficGenerator(plan, seed=2)
    first = list(gen.events(4))
    assert gen.step_index == 4
    rest = [e for _ in range(6) for e in gen.step()]
    assert gen.step_index == 10 and first + rest == whole


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_streams=st.integers(4, 8),
       step_seconds=st.sampled_from([10.0, 60.0, 300.0, 3_600.0]))
def test_generate_with_any_seed_and_every_incident_kind_stays_finite_and_non_negative(
        seed: int, n_streams: int, step_seconds: float) -> None:
    plan = plan_traffic(n_streams, seed=seed, n_steps=60, n_incidents=4,
                        incident_kinds=INCIDENT_KINDS, step_seconds=step_seconds)
    values = np.array([list(e["metrics"].values())
                       for e in TrafficGenerator(plan, seed=seed).events(60)])
    assert np.isfinite(values).all() and (values >= 0).all()


def test_clean_streams_show_a_daily_cycle_peaking_in_the_afternoon() -> None:
    plan = plan_traffic(20, seed=4, n_steps=STEPS_PER_DAY * 4)  # Mon-Thu
    data = series(plan, STEPS_PER_DAY * 4)
    hours = (np.arange(STEPS_PER_DAY * 4) % STEPS_PER_DAY) / 12
    afternoon, night = (hours >= 13) & (hours < 17), (hours >= 1) & (hours < 5)
    for s in plan.clean_streams():
        b = data[s]["bytes_in"]
        assert b[afternoon].mean() > 1.25 * b[night].mean(), s


def test_clean_streams_are_lower_at_the_weekend() -> None:
    plan = plan_traffic(10, seed=8, n_steps=STEPS_PER_DAY * 7)
    data = series(plan, STEPS_PER_DAY * 7)
    weekday = np.arange(STEPS_PER_DAY * 7) // STEPS_PER_DAY  # the default start is a Monday
    for s in plan.streams:
        b = data[s]["bytes_in"]
        assert 0.7 < b[weekday >= 5].mean() / b[weekday < 5].mean() < 0.9, s


def test_clean_streams_have_correlated_metrics_in_realistic_proportions() -> None:
    plan = plan_traffic(30, seed=9, n_steps=STEPS_PER_DAY)
    data = series(plan, STEPS_PER_DAY)
    levels = []
    for s in plan.streams:
        d = data[s]
        out_ratio = d["bytes_out"] / d["bytes_in"]
        assert out_ratio.std() / out_ratio.mean() < 0.06, s  # stable per stream
        assert np.corrcoef(np.log(d["bytes_in"]), np.log(d["packets_in"]))[0, 1] > 0.95, s
        assert 550 < np.median(d["bytes_in"] / d["packets_in"]) < 1_300, s  # packet size
        assert np.all(d["flows"] <= d["packets_in"]), s  # a flow carries at least one packet
        busy = d["flows"] >= 20  # below that the flow noise dominates the packet relation
        if busy.any():
            assert 15 < np.median(d["packets_in"][busy] / d["flows"][busy]) < 70, s
        levels.append(np.median(d["bytes_in"]))
    assert 3e4 < min(levels) and max(levels) < 1e8
    assert max(levels) / min(levels) > 20  # levels spread over orders of magnitude


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spike_multiplies_bytes_packets_and_flows_for_one_to_three_steps(seed: int) -> None:
    incident, hit, clean = with_and_without("spike", 150, 200, seed)
    window = slice(incident.start_index, incident.end_index + 1)
    assert 1 <= incident.end_index - incident.start_index + 1 <= 3
    assert hit["bytes_in"][incident.start_index] >= 4 * np.median(hit["bytes_in"][140:150])
    factor = hit["bytes_in"][window] / clean["bytes_in"][window]
    assert np.allclose(factor, factor[0]) and 5 <= factor[0] <= 12
    packets = hit["packets_in"][window] / clean["packets_in"][window]
    assert np.all((packets > 0.9 * factor[0]) & (packets < 1.1 * factor[0]))
    assert np.all(hit["bytes_out"][window] > 1.5 * clean["bytes_out"][window])
    for m in METRICS:  # nothing changes outside the window
        assert np.array_equal(hit[m][: incident.start_index], clean[m][: incident.start_index])
        assert np.array_equal(hit[m][incident.end_index + 1:], clean[m][incident.end_index + 1:])


def test_spikes_on_many_streams_last_one_to_three_steps_and_stay_within_their_factors() -> None:
    plan = plan_traffic(40, seed=10, n_steps=60, n_incidents=40, incident_kinds=["spike"],
                        earliest_index=30, latest_index=40)
    hit, clean = series(plan, 60), series(dataclasses.replace(plan, incidents=()), 60)
    lengths = {i.end_index - i.start_index + 1 for i in plan.incidents}
    assert lengths <= {1, 2, 3} and len(lengths) > 1
    factors = [hit[i.stream]["bytes_in"][i.start_index] / clean[i.stream]["bytes_in"][i.start_index]
               for i in plan.incidents]
    assert 5 <= min(factors) and max(factors) <= 12
    flows = [(hit[i.stream]["flows"][i.start_index], clean[i.stream]["flows"][i.start_index])
             for i in plan.incidents]
    assert sum(h for h, _ in flows) > 4 * sum(c for _, c in flows)


def test_outage_drops_every_metric_to_zero_for_its_duration_then_recovers() -> None:
    incident, hit, clean = with_and_without("outage", 100, 200)
    assert incident.end_index == incident.start_index + 5  # default: 6 steps
    for m in METRICS:
        assert np.all(hit[m][incident.start_index: incident.end_index + 1] == 0.0), m
        assert np.array_equal(hit[m][incident.end_index + 1:], clean[m][incident.end_index + 1:])
    assert hit["bytes_in"][incident.end_index + 1] > 0


def test_level_shift_persists_with_one_factor_to_the_end_of_the_series() -> None:
    incident, hit, clean = with_and_without("level_shift", 120, 200)
    assert incident.end_index == 199
    factor = hit["bytes_in"][120:] / clean["bytes_in"][120:]
    assert np.allclose(factor, factor[0])
    assert 2.5 <= factor[0] <= 4 or 1 / 4 <= factor[0] <= 1 / 2.5
    assert np.allclose(hit["bytes_out"][120:] / clean["bytes_out"][120:], factor[0])
    assert np.array_equal(hit["bytes_in"][:120], clean["bytes_in"][:120])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ratio_incident_raises_bytes_out_only_and_leaves_bytes_in_normal(seed: int) -> None:
    incident, hit, clean = with_and_without("ratio", 150, 200, seed)
    assert incident.end_index == incident.start_index + 11  # default: 12 steps
    window = slice(incident.start_index, incident.end_index + 1)
    before = slice(incident.start_index - 10, incident.start_index)
    ratio_before = np.median(hit["bytes_out"][before] / hit["bytes_in"][before])
    ratio_during = np.median(hit["bytes_out"][window] / hit["bytes_in"][window])
    assert ratio_during >= 2.5 * ratio_before
    normal = np.median(hit["bytes_in"][before])
    assert 0.5 * normal < np.median(hit["bytes_in"][window]) < 2 * normal
    for m in ("bytes_in", "packets_in", "flows"):
        assert np.array_equal(hit[m], clean[m]), m
    jump = hit["bytes_out"][window] / clean["bytes_out"][window]
    assert np.allclose(jump, jump[0]) and 3 <= jump[0] <= 5


def test_incident_on_one_stream_leaves_every_other_stream_untouched() -> None:
    plan = plan_traffic(8, seed=11, n_steps=100, n_incidents=4, incident_kinds=INCIDENT_KINDS,
                        earliest_index=20, latest_index=80)
    hit, clean = series(plan, 100), series(dataclasses.replace(plan, incidents=()), 100)
    for s in plan.clean_streams():
        assert all(np.array_equal(hit[s][m], clean[s][m]) for m in METRICS), s


def test_plan_records_incidents_on_distinct_streams_with_indices_and_timestamps() -> None:
    count = 2 * len(INCIDENT_KINDS)
    plan = plan_traffic(count + 2, seed=6, n_steps=400, n_incidents=count,
                        incident_kinds=INCIDENT_KINDS, earliest_index=100, latest_index=300,
                        step_seconds=60.0)
    assert sorted(i.kind for i in plan.incidents) == sorted(INCIDENT_KINDS * 2)
    assert len({i.stream for i in plan.incidents}) == count
    assert len(set(plan.incidents)) == count  # hashable: the incident matcher keys them
    for i in plan.incidents:
        assert i.stream in plan.streams and plan.incidents_for(i.stream) == (i,)
        assert 100 <= i.start_index <= 300 and i.start_index <= i.end_index
        assert i.start_ts == plan.start_ts + i.start_index * 60.0
        assert i.end_ts == plan.start_ts + i.end_index * 60.0
        assert i.to_dict() == {"stream": i.stream, "kind": i.kind, "start_index": i.start_index,
                               "end_index": i.end_index, "start_ts": i.start_ts,
                               "end_ts": i.end_ts}
    assert [i.start_index for i in plan.incidents] == sorted(i.start_index for i in plan.incidents)


def test_clean_streams_exclude_every_incident_stream_in_plan_order() -> None:
    plan = plan_traffic(10, seed=6, n_steps=400, n_incidents=3)
    hit = {i.stream for i in plan.incidents}
    assert len(plan.clean_streams()) == 7 and not hit & set(plan.clean_streams())
    assert plan.clean_streams() == tuple(s for s in plan.streams if s not in hit)
    assert plan.incidents_for(plan.clean_streams()[0]) == ()


def test_plan_places_explicit_incidents_from_pairs_or_a_mapping() -> None:
    pairs = plan_traffic(5, seed=1, n_steps=100, incidents=[("outage", 10), ("ratio", 40)])
    assert [(i.kind, i.start_index) for i in pairs.incidents] == [("outage", 10), ("ratio", 40)]
    mapping = plan_traffic(5, seed=1, n_steps=100, incidents={"spike": 50},
                           durations={"spike": 3})
    (spike,) = mapping.incidents
    assert (spike.kind, spike.start_index, spike.end_index) == ("spike", 50, 52)


def test_plan_clips_incidents_at_the_end_of_the_series() -> None:
    plan = plan_traffic(2, seed=1, n_steps=100, incidents=[("ratio", 95)])
    assert plan.incidents[0].end_index == 99


def test_plan_defaults_latest_index_to_twenty_steps_before_the_end() -> None:
    plan = plan_traffic(50, seed=2, n_steps=100, n_incidents=50, earliest_index=70)
    assert {i.start_index for i in plan.incidents} <= set(range(70, 81))


def test_plan_for_an_endless_series_needs_latest_index_and_keeps_level_shifts_open() -> None:
    with pytest.raises(ValueError, match="latest_index"):
        plan_traffic(3, seed=1, n_incidents=1)
    plan = plan_traffic(3, seed=1, n_incidents=1, incident_kinds=["level_shift"],
                        latest_index=50)
    assert plan.incidents[0].end_index == OPEN_END_INDEX
    assert len(list(TrafficGenerator(plan, seed=1).events(60))) == 180


@pytest.mark.parametrize("kwargs", [
    {"n_streams": 0},
    {"n_streams": 2, "n_steps": 0},
    {"n_streams": 2, "step_seconds": 0.0},
    {"n_streams": 2, "step_seconds": float("nan")},
    {"n_streams": 2, "n_incidents": -1, "n_steps": 100},
    {"n_streams": 2, "n_incidents": 3, "n_steps": 100},
    {"n_streams": 2, "n_incidents": 1, "incidents": [("spike", 5), ("outage", 9)],
     "n_steps": 100},
    {"n_streams": 2, "incidents": [("meteor", 10)], "n_steps": 100},
    {"n_streams": 2, "incident_kinds": ["spike", "meteor"], "n_incidents": 1, "n_steps": 100},
    {"n_streams": 2, "incident_kinds": [], "n_incidents": 1, "n_steps": 100},
    {"n_streams": 2, "incidents": [("spike", 100)], "n_steps": 100},
    {"n_streams": 2, "incidents": [("spike", -1)], "n_steps": 100},
    {"n_streams": 2, "n_incidents": 1, "n_steps": 100, "earliest_index": 90, "latest_index": 50},
    {"n_streams": 2, "n_incidents": 1, "n_steps": 100, "latest_index": 100},
    {"n_streams": 2, "n_incidents": 1, "n_steps": 10},  # default latest_index is negative
    {"n_streams": 2, "durations": {"outage": 0}},
    {"n_streams": 2, "durations": {"level_shift": 5}},
])
def test_plan_with_invalid_arguments_raises_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        plan_traffic(seed=0, **kwargs)
