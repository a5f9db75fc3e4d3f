"""What the engine catches and how it explains it (the contract every variant honours is
tests/unit/test_engine_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.engine import Engine, EngineConfig, Event
from tests.unit.factories import T0, traffic

FAST = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32)


def run(events: list[Event], config: EngineConfig = FAST, batch: int = 10_000) -> dict:
    engine = Engine(config)
    scores, alerts, errors = [], [], []
    for start in range(0, len(events), batch):
        result = engine.process(events[start:start + batch])
        scores.append(result.score)
        alerts.append(result.alert)
        errors.append(result.error)
    return {"score": np.concatenate(scores), "alert": np.concatenate(alerts),
            "error": np.concatenate(errors), "engine": engine}


def test_spike_after_warmup_alerts_and_clean_streams_stay_quiet() -> None:
    n, steps, at = 5, 400, 300
    result = run(traffic(n_streams=n, n_steps=steps, spike=(2, at, 8.0)))
    alerts = np.flatnonzero(result["alert"])
    assert at * n + 2 in alerts, "the spike was not alerted"
    others = [i for i in alerts if i != at * n + 2]
    assert len(others) <= 1, f"false alarms at {[(i // n, i % n) for i in others]}"


def test_cooldown_suppresses_repeat_alerts_for_one_incident() -> None:
    config = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32,
                          cooldown_events=50)
    events = traffic(n_streams=1, n_steps=300)
    for t in range(250, 255):  # five consecutive huge values: one incident
        e = events[t]
        events[t] = Event(e.stream, e.ts, {k: v * 20 for k, v in e.metrics.items()})
    result = run(events, config)
    assert result["alert"][250:255].sum() == 1


def test_threshold_override_applies_by_glob_pattern() -> None:
    config = EngineConfig(hidden_size=16, window=4, threshold=0.5,
                          threshold_overrides={"host-1/*": 0.99, "host-*": 0.7})
    engine = Engine(config)
    result = engine.process(traffic(n_streams=3, n_steps=1))
    assert list(result.threshold) == [0.7, 0.99, 0.7]


def test_event_with_a_new_metric_is_rejected_with_the_stream_named() -> None:
    engine = Engine(FAST)
    engine.process([Event("a", T0, {"x": 1.0})])
    result = engine.process([Event("a", T0 + 60, {"x": 1.0, "y": 2.0})])
    reason = result.rejected[0]
    assert reason is not None and reason.kind == "metrics"
    assert "'a'" in reason.detail and "['y']" in reason.detail


def test_explanation_gives_expected_close_to_actual_on_a_learned_stream() -> None:
    events = traffic(n_streams=1, n_steps=400)
    engine = Engine(FAST)
    result = engine.process(events)
    expected, actual = result.explanation(399)
    assert set(expected) == {"bytes_in", "bytes_out"}
    assert expected["bytes_in"] == pytest.approx(actual["bytes_in"], rel=0.5)


def test_a_four_metric_stream_costs_at_most_four_kilobytes_beside_wide_hosts() -> None:
    engine = Engine(EngineConfig())  # defaults: up to 64 metrics per stream
    wide = {f"m{j}": 1.0 + j for j in range(64)}
    mid = dict(list(wide.items())[:20])
    result = engine.process([Event("link", T0, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}),
                             Event("host", T0, wide), Event("mid", T0, mid)])
    assert result.rejected == [None, None, None]
    assert engine.arena_of("link").state_bytes_per_stream() <= 4096
    assert engine.arena_of("host").shape.max_metrics == 64
    assert engine.arena_of("mid").shape.max_metrics == 32
    assert engine.arena_of("link").shape.max_metrics == 4
    assert {w: lane.arena.capacity for w, lane in engine.lanes.items()}.keys() == {4, 32, 64}


def test_change_only_in_the_relation_between_metrics_is_caught() -> None:
    # bytes_out rises 4x for a while; bytes_in, each alone, stays perfectly normal
    n, steps, start = 4, 400, 300
    events = traffic(n_streams=n, n_steps=steps)
    for t in range(start, start + 10):
        i = t * n + 1
        e = events[i]
        events[i] = Event(e.stream, e.ts, {"bytes_in": e.metrics["bytes_in"],
                                           "bytes_out": 4 * e.metrics["bytes_out"]})
    result = run(events, EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32))
    flagged = [i // n for i in np.flatnonzero(result["alert"]) if i % n == 1]
    assert any(start <= t < start + 10 for t in flagged), flagged


def test_seasonal_steps_are_forecast_once_seen_on_earlier_days() -> None:
    rng = np.random.default_rng(2)
    events = []
    for t in range(288 * 6):
        hour = (t * 300 % 86_400) / 3600
        level = 60.0 if 9 <= hour < 18 else 20.0
        events.append(Event("office/eth0", T0 + 300 * t,
                            {"v": level + float(rng.normal(0, 0.5))}))
    step_day6 = 288 * 5 + 9 * 12  # 09:00 on the sixth day
    # The forecast's part: the daily evidence (on by default) scores this step the same in both.
    base = dict(hidden_size=8, window=4, train_batch=8, warmup_events=100, log_transform=False,
                daily_evidence=False)
    plain = Engine(EngineConfig(**base)).process(events)
    seasonal = Engine(EngineConfig(**base, seasonal_buckets=288)).process(events)
    assert seasonal.expected[step_day6, 0] == pytest.approx(60.0, abs=5.0)
    assert plain.expected[step_day6, 0] < 40.0
    assert seasonal.raw_score[step_day6] < plain.raw_score[step_day6] / 2
