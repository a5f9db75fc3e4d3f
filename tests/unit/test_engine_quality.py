"""What the default scoring adds to the forecast: alert directions, the relation and level
evidence, the range rule's warm-up and each stream's own tail of surprises."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pytest

from detector.engine import Engine, EngineConfig, Event, calibration_tail, daily_habit
from detector.engine.evidence import levels as evidence_levels
from tests.unit.factories import T0, traffic

FAST = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32)

def scaled(events: list[Event], i: int, factor: float) -> None:
    e = events[i]
    events[i] = Event(e.stream, e.ts, {k: v * factor for k, v in e.metrics.items()})


# -- directions --------------------------------------------------------------------------

N, STEPS, AT = 2, 400, 350  # stream 0 rises 8x at AT, stream 1 falls as far (log scale)


def rise_and_drop() -> list[Event]:
    # 15-minute steps: 4 days, so the range rule (3-day warm-up) is in force as well
    events = traffic(n_streams=N, n_steps=STEPS, step_s=900.0)
    scaled(events, AT * N + 0, 8.0)
    scaled(events, AT * N + 1, 1 / 8)
    return events


def per_stream(directions: dict) -> tuple[np.ndarray, np.ndarray]:
    """(raw score, alert) [step, stream] of `rise_and_drop` under `directions`."""
    return _per_stream(json.dumps(directions))


@functools.cache  # one engine run per setting for the whole module: the engine is deterministic
def _per_stream(directions: str) -> tuple[np.ndarray, np.ndarray]:
    config = dataclasses.replace(FAST, directions=json.loads(directions))
    result = Engine(config).process(rise_and_drop())
    return result.raw_score.reshape(STEPS, N), result.alert.reshape(STEPS, N)


def test_both_a_rise_and_an_equal_drop_alert_without_directions() -> None:
    raw, alert = per_stream({})
    assert alert[AT].tolist() == [True, True], raw[AT]


@pytest.mark.parametrize(("direction", "alerted", "quiet"), [("up", 0, 1), ("down", 1, 0)])
def test_a_direction_alerts_on_its_way_and_not_on_an_equal_move_the_other_way(
        direction: str, alerted: int, quiet: int) -> None:
    raw, alert = per_stream({"host-*": direction})
    assert alert[AT, alerted], raw[AT]
    assert not alert[AT, quiet] and raw[AT, quiet] < 0.3, raw[AT]


def test_metric_directions_apply_per_metric() -> None:
    # bytes_in may only alert up: stream 1's drop shows in both metrics, and bytes_out
    # (both ways) alerts on it
    raw, alert = per_stream({"host-*": {"bytes_in": "up"}})
    assert alert[AT].tolist() == [True, True], raw[AT]


@pytest.mark.parametrize(("direction", "quiet"), [("up", 1), ("down", 0)])
def test_a_move_the_other_way_and_its_return_to_normal_never_alert(
        direction: str, quiet: int) -> None:
    raw, alert = per_stream({"host-*": direction})
    assert not alert[AT:AT + 5, quiet].any(), raw[AT:AT + 5, quiet]


def test_mixed_metric_directions_on_clean_traffic_stay_quiet() -> None:
    assert not per_stream({})[1][:AT].any()
    _, alert = per_stream({"host-*": {"bytes_in": "up"}})
    assert not alert[:AT].any(), np.argwhere(alert[:AT]).tolist()


# -- relation evidence -------------------------------------------------------------------

CREEP_AT, CREEP_STEPS = 480, 10  # 16:00 on day 2, near the daily trough


def moving_together(steps: int = 520, creep: float = 0.0) -> list[Event]:
    """One stream whose bytes_out is 0.3 x bytes_in (1% noise) over a ±40% daily cycle;
    from CREEP_AT bytes_out alone creeps up by `creep` over CREEP_STEPS events."""
    rng = np.random.default_rng(0)
    events = []
    for t in range(steps):
        day = math.sin(2 * math.pi * (t * 300 % 86_400) / 86_400)
        v = 1e5 * (1 + 0.4 * day) * math.exp(rng.normal(0, 0.05))
        out = 0.3 * v * math.exp(rng.normal(0, 0.01))
        if t >= CREEP_AT:
            out *= 1 + creep * min(1.0, (t - CREEP_AT) / CREEP_STEPS)
        events.append(Event("host/eth0", T0 + 300 * t, {"bytes_in": v, "bytes_out": out}))
    return events


def test_one_metric_leaving_its_companion_within_its_own_range_is_caught_by_the_relation(
        ) -> None:
    events = moving_together(creep=0.4)
    out = np.array([e.metrics["bytes_out"] for e in events])
    creeping = slice(CREEP_AT, CREEP_AT + 2 * CREEP_STEPS)
    assert out[creeping].max() < 0.8 * out[:CREEP_AT].max()  # within its usual range
    # the relation alone, trusted after a day (the stream spans 43 hours)
    config = dataclasses.replace(FAST, spatial_margin=0.0, spatial_warmup_s=86_400.0)
    with_relation = Engine(config).process(events)
    without = Engine(dataclasses.replace(config, relation_evidence=False)).process(events)
    assert with_relation.raw_score[creeping].max() >= 0.9
    assert with_relation.alert[creeping].any()
    assert without.raw_score[creeping].max() < 0.5 and not without.alert.any()
    assert not with_relation.alert[:CREEP_AT].any()  # moving together is no incident


# -- the range rule's warm-up ------------------------------------------------------------

PER_DAY = 96  # 15-minute steps


def new_peak(ramp_at: int, days: float = 5.5, rise: float = 0.3) -> list[Event]:
    """A ±30% daily cycle whose values creep `rise` above its usual level over 3 hours from
    `ramp_at` (to a new peak), stay for 6 hours, then return."""
    rng = np.random.default_rng(0)
    events = []
    for t in range(int(days * PER_DAY)):
        day = math.sin(2 * math.pi * (t % PER_DAY) / PER_DAY)
        v = 1000 * (1 + 0.3 * day) * math.exp(rng.normal(0, 0.03))
        if ramp_at <= t < ramp_at + 36:
            v *= 1 + rise * min(1.0, (t - ramp_at) / 12)
        events.append(Event("svc", T0 + 900.0 * t, {"v": v}))
    return events


def peak_raw(config: EngineConfig, ramp_at: int) -> np.ndarray:
    return Engine(config).process(new_peak(ramp_at)).raw_score[ramp_at:ramp_at + 36]


def test_a_young_stream_setting_a_new_peak_is_not_flagged_by_the_range_rule() -> None:
    assert FAST.spatial_warmup_s == 3 * 86_400
    ramp_at = PER_DAY + 12  # 03:00 on day 2: the ramp peaks at the day's busy hours
    values = [e.metrics["v"] for e in new_peak(ramp_at)]
    assert max(values[ramp_at:ramp_at + 36]) > 1.2 * max(values[:ramp_at])
    young = peak_raw(FAST, ramp_at)
    range_off = peak_raw(dataclasses.replace(FAST, spatial_margin=0.0), ramp_at)
    np.testing.assert_array_equal(young, range_off)
    assert young.max() < 0.7
    # Without the warm-up the same peak breaks the range.
    assert peak_raw(dataclasses.replace(FAST, spatial_warmup_s=0.0), ramp_at).max() == 1.0


def test_after_the_warm_up_the_same_new_peak_scores_one_from_the_range_rule() -> None:
    ramp_at = 4 * PER_DAY + 12  # day 5
    assert peak_raw(FAST, ramp_at).max() == 1.0
    assert peak_raw(dataclasses.replace(FAST, spatial_margin=0.0), ramp_at).max() < 0.7


def drifting(rise: float) -> list[Event]:
    """The ±30% daily cycle of 15-minute steps for 9 days, then its level climbing by `rise`
    over two days and staying there: no single value beyond its range by the value margin,
    and no event moving the running mean by the mean margin."""
    rng = np.random.default_rng(1)
    events = []
    for t in range(12 * PER_DAY):
        day = math.sin(2 * math.pi * (t % PER_DAY) / PER_DAY)
        level = 1 + rise * min(1.0, max(0.0, (t - 9 * PER_DAY) / (2 * PER_DAY)))
        v = 1000 * level * (1 + 0.3 * day) * math.exp(rng.normal(0, 0.01))
        events.append(Event("room-temp", T0 + 900.0 * t, {"v": v}))
    return events


def test_a_mean_drifting_beyond_every_level_it_has_held_scores_one() -> None:
    # A climb of 8 % drifts the mean past the drift margin (0.05 of its range), and in no
    # single event past the mean margin.
    events = drifting(0.08)
    values = np.array([e.metrics["v"] for e in events])
    before, after = values[:9 * PER_DAY], values[9 * PER_DAY:]
    width = before.max() - before.min()
    assert after.max() < before.max() + FAST.spatial_value_margin * width  # no new extreme
    raw = {name: Engine(dataclasses.replace(FAST, **change)).process(events).raw_score
           for name, change in (("drift", {}), ("no drift", {"spatial_drift_margin": 0.0}),
                                ("no rule", {"spatial_margin": 0.0}))}
    # The jump check alone never fires on it: the rule without the drift scores as no rule.
    np.testing.assert_array_equal(raw["no drift"], raw["no rule"])
    assert raw["no drift"][9 * PER_DAY:].max() < 0.7
    assert raw["drift"][9 * PER_DAY:].max() == 1.0
    # Before the climb the two agree: nine days of the same cycle never drift.
    np.testing.assert_array_equal(raw["drift"][:9 * PER_DAY], raw["no drift"][:9 * PER_DAY])


# -- each stream's own tail --------------------------------------------------------------

PER_DAY_5MIN = 288
DAILY = dataclasses.replace(FAST, hidden_size=8, warmup_events=64)


def office(days: int) -> list[Event]:
    """20 at night, 60 from 09:00 to 18:00, noise 0.5: a daily step the model does not
    forecast (no seasonal steps)."""
    rng = np.random.default_rng(2)
    events = []
    for t in range(PER_DAY_5MIN * days):
        hour = (t * 300 % 86_400) / 3600
        level = 60.0 if 9 <= hour < 18 else 20.0
        events.append(Event("office/eth0", T0 + 300 * t, {"v": level + float(rng.normal(0, 0.5))}))
    return events


def morning_scores(result_raw: np.ndarray, days: int) -> list[float]:
    """Each day's highest raw score over the three events from 09:00."""
    return [float(result_raw[d * PER_DAY_5MIN + 108:d * PER_DAY_5MIN + 111].max())
            for d in range(days)]


@pytest.fixture(scope="module")
def office_week() -> list[float]:
    """The morning scores of nine office days."""
    return morning_scores(Engine(DAILY).process(office(9)).raw_score, 9)


def test_a_recurring_daily_step_scores_lower_once_it_is_the_streams_habit(
        office_week: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    first, *later = office_week
    assert first == 1.0
    # The tail learns from event 256 (day 1) on; a few sightings later the step is habit (the
    # fifth or sixth morning, depending on the weights' initialisation), damped to its
    # frequency plus a level per tenfold the textbook puts it beyond (about 0.52).
    assert min(later[3:5]) < 0.6, office_week
    # It is the tails and the daily habits that lower it, not a forecast that learnt the step.
    monkeypatch.setattr(calibration_tail, "HABIT_COUNT", math.inf)
    monkeypatch.setattr(daily_habit, "MIN_LEVEL", math.inf)
    to_day_4 = office(5)[:4 * PER_DAY_5MIN + 111]
    assert morning_scores(Engine(DAILY).process(to_day_4).raw_score, 5) == [1.0] * 5


def test_a_step_back_at_the_same_hour_is_a_daily_habit_before_the_tail_makes_it_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The tails learn from event 256 on: the second morning (event 396) is the first they
    # see, and the next day's step comes back within the same hour, an octave of it.
    to_day_3 = office(4)[:3 * PER_DAY_5MIN + 111]
    mornings = morning_scores(Engine(DAILY).process(to_day_3).raw_score, 4)
    assert mornings[:2] == [1.0, 1.0] and max(mornings[2:]) < 0.6, mornings
    # Without the daily habit the tail alone needs its four sightings: two more mornings.
    monkeypatch.setattr(daily_habit, "MIN_LEVEL", math.inf)
    strict = morning_scores(Engine(DAILY).process(to_day_3).raw_score, 4)
    assert strict == [1.0] * 4, strict


def test_a_daily_step_seen_every_day_stays_below_the_threshold_once_habitual(
        office_week: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    # Habit from the fifth morning on, and it stays one, though the model's residual spread
    # keeps narrowing and the step's level creeps up into the next half-octave bins.
    assert max(office_week[4:]) < FAST.threshold, office_week
    # Without the forecast's tolerance for that creep the step scores 1 again on later days
    # (the daily habits, which tolerate an octave of it themselves, off).
    monkeypatch.setattr(evidence_levels, "CREEP", np.zeros_like(evidence_levels.CREEP))
    monkeypatch.setattr(daily_habit, "MIN_LEVEL", math.inf)
    strict = morning_scores(Engine(DAILY).process(office(9)).raw_score, 9)
    assert max(strict[4:]) == 1.0, strict


# -- counts ------------------------------------------------------------------------------

COUNT_STEP_S, COUNT_DAYS = 300.0, 6
BURST = (5 * 288 + 100, 12)  # (first step, steps): a burst of crashes on day 6


def crash_counter(burst: bool) -> list[Event]:
    """One stream counting crashes per 5 minutes: about six a day at random, and with `burst`
    three a step for an hour."""
    rng = np.random.default_rng(3)
    counts = rng.poisson(0.02, COUNT_DAYS * 288).astype(float)
    if burst:
        start, steps = BURST
        counts[start:start + steps] = rng.poisson(3.0, steps) + 1
    return [Event("svc-api/crashes", T0 + t * COUNT_STEP_S, {"crashes": c})
            for t, c in enumerate(counts)]


@functools.cache
def _crashes(burst: bool) -> tuple[np.ndarray, np.ndarray]:
    result = Engine(FAST).process(crash_counter(burst))
    return result.raw_score, result.alert


def test_a_crash_counters_routine_single_crashes_do_not_alert() -> None:
    raw, alert = _crashes(False)
    counts = np.array([e.metrics["crashes"] for e in crash_counter(False)])
    crashes = np.flatnonzero(counts > 0)
    alone = [t for t in crashes[crashes >= 288]  # after the first day, which may be news
             if np.abs(crashes - t).min(initial=99, where=crashes != t) > 16]
    assert len(alone) >= 10  # the routine is there to be judged
    # In the stream's running sigmas each 1 is hundreds; one count is its smallest step.
    assert raw[alone].max() < 0.3, raw[alone]
    # Two crashes in ten minutes, for the first time since the range rule's warm-up, set a
    # record of the running mean once (day 4); nothing else alerts.
    assert alert[288:].sum() <= 1, np.flatnonzero(alert)


def test_a_burst_of_crashes_alerts() -> None:
    raw, alert = _crashes(True)
    start, steps = BURST
    assert alert[start:start + steps].any(), raw[start:start + steps]
