"""Which metric made an event unusual: each metric's share of the standardised surprise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.engine import Engine, EngineConfig, Event, calibrator, ranking
from tests.unit.factories import T0

FAST = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32)
SCALES = {"bytes_in": 1.2e6, "bytes_out": 3.4e5, "packets_in": 1_500.0, "flows": 40.0}


def four_metric_stream(n: int, spike_at: int, metric: str, factor: float) -> list[Event]:
    """One stream of four correlated metrics of very different scales; one metric spikes."""
    rng = np.random.default_rng(5)
    events = []
    for t in range(n):
        level = 1 + 0.3 * math.sin(2 * math.pi * t / 288)
        values = {m: s * level * math.exp(rng.normal(0, 0.03)) for m, s in SCALES.items()}
        if t == spike_at:
            values[metric] *= factor
        events.append(Event("edge-07/eth0", T0 + 300 * t, values))
    return events


def test_shares_split_the_standardised_surprise_and_leave_invalid_metrics_out() -> None:
    squares = np.array([[9.0, 1.0, -1.0, 0.0],     # third metric missing
                        [0.0, 0.0, 0.0, -1.0],     # no surprise at all: shared equally
                        [1e308, 1e308, 4.0, 1.0],  # a sum of these would overflow
                        [-1.0, -1.0, -1.0, -1.0]])  # nothing valid
    out = calibrator.shares(squares)
    np.testing.assert_allclose(out[0], [0.9, 0.1, np.nan, 0.0])
    np.testing.assert_allclose(out[1], [1 / 3, 1 / 3, 1 / 3, np.nan])
    np.testing.assert_allclose(out[2], [0.5, 0.5, 0.0, 0.0], atol=1e-12)
    assert np.isnan(out[3]).all()


def test_shares_rank_metrics_as_the_surprise_the_score_is_built_from() -> None:
    rng = np.random.default_rng(1)
    residual = rng.normal(0, 3, size=(50, 4))
    res_var = rng.uniform(0.5, 4, size=(50, 4))
    valid = rng.random((50, 4)) > 0.2
    min_var = np.full((50, 4), 1e-6)
    squares = calibrator.standardised_squares(residual, valid, res_var, min_var)
    out = calibrator.shares(squares)
    worst = calibrator.surprise(residual, valid, res_var, min_var)
    for i in np.flatnonzero(valid.any(axis=1)):
        assert np.nansum(out[i]) == pytest.approx(1.0)
        assert np.nanargmax(out[i]) == np.argmax(np.where(valid[i], squares[i], -1))
        assert squares[i, np.nanargmax(out[i])] == worst[i]


@pytest.mark.parametrize("metric", ["flows", "packets_in"])
def test_alert_on_a_spike_in_one_small_metric_ranks_that_metric_first(metric: str) -> None:
    events = four_metric_stream(400, spike_at=350, metric=metric, factor=6.0)
    result = Engine(FAST).process(events)
    assert result.alert[350], "the spike must alert for this test to mean anything"
    ranked = result.ranked(350)
    assert [name for name, _ in ranked][0] == metric and ranked[0][1] > 0.5
    assert sorted(name for name, _ in ranked) == sorted(SCALES)
    assert sum(share for _, share in ranked) == pytest.approx(1.0)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_a_missing_metric_gets_no_share_and_is_left_out_of_the_ranking() -> None:
    events = four_metric_stream(120, spike_at=-1, metric="flows", factor=1.0)
    last = events[-1]
    events[-1] = Event(last.stream, last.ts, {**last.metrics, "flows": math.nan})
    result = Engine(FAST).process(events)
    j = result.metric_names[-1].index("flows")
    assert math.isnan(result.contribution[-1, j])
    assert set(dict(result.ranked(len(events) - 1))) == set(SCALES) - {"flows"}


def test_evidence_beyond_the_level_that_scores_1_does_not_drown_the_other_evidence() -> None:
    # The forecast names metrics 0 and 1 at a level that scores about 0.7; the level evidence
    # names metric 2, a flat metric that moved at all, at a level of thousands. Both are as
    # sure as a score can say, so both get their say: metric 2 does not take nearly all.
    levels = np.array([[5.0], [3_000.0], [np.nan]])
    forecast = np.array([[30.0, 20.0, 0.1, 0.1]])
    deviation = np.array([[0.5, 0.5, 1e6, 0.2]])
    valid = np.ones((1, 4), dtype=bool)
    parts = ranking.explain(levels, [forecast, deviation, None], valid)
    order = list(np.argsort(-parts[0]))
    assert order[:3] == [2, 0, 1]
    shares = calibrator.shares(parts)[0]
    assert shares[0] + shares[1] > 0.3 and shares[2] < 0.7
    assert np.all(ranking.explain(levels, [forecast, deviation, None], ~valid) == -1.0)


def test_the_relation_terms_only_break_ties() -> None:
    # The relation scores the event (level 3,000) through metric 3, a metric that hardly ever
    # moves; the forecast and the level evidence, less sure, both name metric 0. The ranking
    # follows them. Where nothing but the relation names a metric, its terms still rank.
    levels = np.array([[2.0], [2.5], [3_000.0]])
    forecast = np.array([[9.0, 1.0, 0.5, 0.1]])
    deviation = np.array([[4.0, 1.0, 0.5, 0.2]])
    terms = np.array([[1.0, 0.5, 0.1, 80.0]])
    valid = np.ones((1, 4), dtype=bool)
    parts = ranking.explain(levels, [forecast, deviation, terms], valid)
    assert list(np.argsort(-parts[0]))[:2] == [0, 1]
    zero = np.zeros((1, 4))
    alone = ranking.explain(levels, [zero, zero, terms], valid)
    assert list(np.argsort(-alone[0])) == [3, 0, 1, 2]


def test_an_alert_late_in_an_incident_still_names_the_metrics_that_broke_at_its_onset() -> None:
    # Stream 0: metrics 0 and 1 break (score 1), then a milder alert (0.75) that, alone,
    # would name metric 3. The memory keeps the onset's metrics on top.
    memory = np.zeros((2, 4), dtype=np.float32)
    onset = np.array([[7.0, 6.0, 0.5, 0.5]])
    late = np.array([[0.5, 0.5, 0.5, 3.0]])
    out = ranking.remember(memory, [(0, 1)], np.array([0]), onset, np.array([1.0]))
    assert list(np.argsort(-out[0]))[:2] == [0, 1]
    out = ranking.remember(memory, [(0, 1)], np.array([0]), late, np.array([0.75]))
    assert list(np.argsort(-out[0]))[:2] == [0, 1]
    assert out[0, 3] > out[0, 2], "the late alert's own metric still ranks above the quiet one"
    assert not memory[1].any(), "another stream's memory is untouched"


def test_routine_events_hardly_move_the_memory_and_a_new_incident_takes_over() -> None:
    memory = np.zeros((1, 4), dtype=np.float32)
    s = np.array([0])
    ranking.remember(memory, [(0, 1)], s, np.array([[7.0, 0.0, 0.0, 0.0]]), np.array([1.0]))
    for _ in range(10):  # routine events naming metric 2, score 0.3
        out = ranking.remember(memory, [(0, 1)], s, np.array([[0.0, 0.0, 2.0, 0.0]]),
                               np.array([0.3]))
    assert np.argmax(out[0]) == 0
    for _ in range(5):  # a new incident through metric 1
        out = ranking.remember(memory, [(0, 1)], s, np.array([[0.0, 7.0, 0.0, 0.0]]),
                               np.array([1.0]))
    assert np.argmax(out[0]) == 1
    # Fades with the half-life: after it, half the memory is left.
    before = memory.copy()
    for _ in range(int(ranking.HALFLIFE_EVENTS)):
        ranking.remember(memory, [(0, 1)], s, np.zeros((1, 4)), np.array([0.0]))
    np.testing.assert_allclose(memory, before / 2, rtol=1e-4)


def test_the_memory_takes_a_stream_s_events_in_wave_order_and_leaves_missing_metrics_out() -> None:
    # One batch, stream 0 twice (two waves): the second event's output includes the first.
    memory = np.zeros((1, 3), dtype=np.float32)
    parts = np.array([[5.0, 0.0, 1.0], [0.0, 1.0, -1.0]])
    out = ranking.remember(memory, [(0, 1), (1, 2)], np.array([0, 0]), parts,
                           np.array([1.0, 1.0]))
    np.testing.assert_allclose(out[0], [5.0, 0.0, 1.0])
    np.testing.assert_allclose(out[1], [5.0 * ranking.DECAY, 1.0, -1.0], rtol=1e-6)
    assert memory[0, 2] == pytest.approx(ranking.DECAY)
