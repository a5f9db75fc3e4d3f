"""Surprise levels and the stream's own tail (detector/engine/calibration_tail.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.engine.calibration_tail import (
    EDGES,
    FIRST_OCTAVE_BIN,
    HABIT_COUNT,
    HALFLIFE_S,
    LEVEL_AT_ONE,
    N_LEVEL_BINS,
    TRUSTED_COUNT,
    YOUNG_WEIGHT,
    chi2_level,
    keep,
    level_bin,
    normal_level,
    rarity,
    remember,
    score,
)

LN10 = math.log(10.0)


def two_sided(z: float) -> float:
    """-log10 P(|Z| >= z) of a standard normal Z."""
    return -math.log10(math.erfc(z / math.sqrt(2.0)))


def normal(z: list[float], n_valid: int = 1, sides: int = 2) -> np.ndarray:
    square = np.square(np.asarray(z, dtype=np.float64))
    return normal_level(square, np.full(square.size, n_valid), sides)


def history_of(levels: list[float], halflife: float = math.inf,
               step_s: float | None = None) -> np.ndarray:
    """One stream's histogram after learning `levels` in turn, one every `step_s` seconds
    (None: decay by events alone; no decay at all by default)."""
    history = np.zeros((1, N_LEVEL_BINS))
    dt = None if step_s is None else np.array([step_s])
    for u in levels:
        history = remember(history, np.array([u]), np.array([True]), halflife, dt)
    return history


def damped(u: float, habit: float) -> float:
    """The level of a surprise `u` whose habit is `habit` (calibration_tail.rarity)."""
    return min(u, habit + max(math.log10(u / max(habit, 1.0)), 0.0))


def test_normal_level_of_three_sigma_two_sided_is_the_textbook_tail() -> None:
    # P(|Z| >= 3) = 0.0026998, level 2.5687
    assert normal([3.0])[0] == pytest.approx(2.5687, abs=1e-4)
    for z in (0.5, 1.0, 2.0, 4.0, 6.0, 8.0):
        assert normal([z])[0] == pytest.approx(two_sided(z), rel=1e-9), z


def test_normal_level_one_sided_and_bonferroni_shift_the_tail_by_their_factor() -> None:
    z = 4.0
    assert normal([z], sides=1)[0] == pytest.approx(two_sided(z) + math.log10(2), rel=1e-9)
    # The largest of 5 metrics: the chance is 5 times that of one.
    assert normal([z], n_valid=5)[0] == pytest.approx(two_sided(z) - math.log10(5), rel=1e-9)
    # Never negative: a tiny deviation among many metrics is no surprise, not a negative one.
    assert normal([0.1], n_valid=8)[0] == 0.0


def test_normal_level_far_tail_is_finite_increasing_and_follows_the_asymptote() -> None:
    z = np.geomspace(0.1, 1e6, 5_000)
    levels = normal(list(z))
    assert np.all(np.isfinite(levels))
    assert np.all(np.diff(levels) > 0)
    # Mills ratio: log P(|Z| >= z) = -z^2/2 - log z - log sqrt(pi/2) + O(1/z^2)
    for far in (40.0, 1e3, 1e5):
        asymptote = (far * far / 2 + math.log(far) + 0.5 * math.log(math.pi / 2)) / LN10
        assert normal([far])[0] == pytest.approx(asymptote, rel=1e-6), far
    # Beyond float range the level stays a number that scores 1.
    beyond = normal_level(np.array([np.inf, 1e308]), np.array([1, 1]))
    assert np.all(np.isfinite(beyond)) and np.all(score(beyond) == 1.0)


def test_normal_level_without_a_valid_metric_or_value_is_zero() -> None:
    levels = normal_level(np.array([np.nan, 25.0, np.nan]), np.array([1, 0, 0]))
    np.testing.assert_array_equal(levels, [0.0, 0.0, 0.0])


def test_chi2_level_with_one_dof_equals_the_two_sided_normal_level() -> None:
    z = np.linspace(0.1, 10.0, 100)
    np.testing.assert_allclose(chi2_level(z * z, np.ones(z.size, dtype=int)),
                               normal(list(z)), rtol=1e-9)
    # Where Q underflows the leading asymptotic term stands in: off by O(1/z^2) in Q.
    far = np.array([20.0, 37.0, 38.0, 50.0, 300.0])
    np.testing.assert_allclose(chi2_level(far * far, np.ones(far.size, dtype=int)),
                               normal(list(far)), rtol=1e-5)


def test_chi2_level_with_two_dof_is_the_exponential_tail_exactly() -> None:
    # Q = exp(-x/2): level x / (2 ln 10), also where Q underflows (x = 2000: Q = e^-1000).
    x = np.array([1.0, 10.0, 100.0, 1_000.0, 2_000.0, 1e5])
    np.testing.assert_allclose(chi2_level(x, np.full(x.size, 2)), x / (2 * LN10), rtol=1e-9)


def test_chi2_level_four_dof_matches_the_closed_form() -> None:
    # Q = exp(-x/2) (1 + x/2)
    x = np.array([2.0, 20.0, 200.0])
    want = (x / 2 - np.log1p(x / 2)) / LN10
    np.testing.assert_allclose(chi2_level(x, np.full(x.size, 4)), want, rtol=1e-9)


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 8, 16])
def test_chi2_level_far_tail_is_finite_and_increasing(dof: int) -> None:
    x = np.geomspace(0.5, 1e8, 20_000)
    levels = chi2_level(x, np.full(x.size, dof))
    assert np.all(np.isfinite(levels)) and np.all(levels >= 0)
    assert np.all(np.diff(levels[levels < 200]) > 0)
    assert levels[-1] > 1e7
    # Where the exact tail (Q > 1e-280, level 280) hands over to its leading asymptotic term
    # the level may step back by the term's error (1e-4 for one dof), nothing more.
    fine = np.linspace(1_000.0, 1_600.0, 60_001)
    assert np.diff(chi2_level(fine, np.full(fine.size, dof))).min() > -1e-3


def test_chi2_level_without_degrees_of_freedom_is_zero() -> None:
    np.testing.assert_array_equal(chi2_level(np.array([1e6, 0.0]), np.array([0, 0])), [0, 0])


def test_rarity_keeps_a_level_until_it_was_seen_habit_count_times() -> None:
    assert HABIT_COUNT == 4.0 and TRUSTED_COUNT == 1_000  # the counts below are written for it
    quiet = [0.1] * 1_996  # a stream whose own tail is trusted
    level = np.array([5.0])
    assert rarity(level, history_of(quiet))[0] == 5.0
    assert rarity(level, history_of(quiet + [5.0] * 3))[0] == 5.0
    lowered = rarity(level, history_of(quiet + [5.0] * 4))[0]
    assert lowered == pytest.approx(damped(5.0, -math.log10(4 / 2000)))
    assert lowered < 3.0
    # A level above every surprise seen keeps its textbook value.
    assert rarity(np.array([9.0]), history_of(quiet + [5.0] * 4))[0] == 9.0


def test_rarity_lowers_a_lesser_level_to_the_frequency_of_higher_surprises() -> None:
    history = history_of([0.1] * 990 + [6.0] * 10)
    # 3.0 is beyond 99% of the stream's surprises: 10 in 1000 were higher. The textbook
    # rates it 1.5 times the habit's level, not a tenfold: nothing comes back.
    assert rarity(np.array([3.0]), history)[0] == pytest.approx(2.0 + math.log10(1.5))
    # A level the stream shows every other event is no surprise.
    common = history_of([0.1] * 500 + [1.0] * 500)
    assert rarity(np.array([1.0]), common)[0] == pytest.approx(-math.log10(0.5))


def test_rarity_never_raises_a_level_and_keeps_their_order() -> None:
    rng = np.random.default_rng(7)
    history = rng.poisson(rng.uniform(0, 20, size=(64, N_LEVEL_BINS))).astype(np.float64)
    history[::4] = 0.0  # young streams: nothing seen
    for _ in range(20):
        level = rng.exponential(3.0, size=64)
        lowered = rarity(level, history)
        assert np.all(lowered <= level) and np.all(lowered >= 0)
        np.testing.assert_allclose(lowered[::4], YOUNG_WEIGHT * level[::4])
        higher = rarity(level + rng.uniform(0, 2, size=64), history)
        assert np.all(higher >= lowered)


def test_a_habit_dampens_a_surprise_by_how_far_the_textbook_puts_it_beyond_the_habit() -> None:
    # A host whose incidents recur: ten sightings of a surprise the textbook puts at level
    # 2,000 (70 sigma on a flat metric) in a tail of 2,000. Lowered all the way to its
    # frequency it would score 0.33 and never alert again; damped it still does.
    incidents = history_of([0.1] * 1_990 + [2_000.0] * 10)
    habit = -math.log10(10 / 2_000)
    incident = rarity(np.array([2_000.0]), incidents)[0]
    assert incident == pytest.approx(habit + math.log10(2_000.0 / habit))
    assert score(np.array([incident]))[0] > 0.7
    # A routine bump seen as often, which the textbook rates at level 6, stays quiet.
    routine = rarity(np.array([6.0]), history_of([0.1] * 1_990 + [6.0] * 10))[0]
    assert routine == pytest.approx(habit + math.log10(6.0 / habit))
    assert score(np.array([routine]))[0] < 0.45
    # One level back per tenfold of the textbook level.
    tenfold = rarity(np.array([20_000.0]), history_of([0.1] * 1_990 + [20_000.0] * 10))[0]
    assert tenfold - incident == pytest.approx(1.0)


def test_a_tail_forgets_no_faster_than_a_half_per_week_of_its_streams_time() -> None:
    assert HALFLIFE_S == 7 * 86_400.0
    per_event = 0.5 ** (1 / 2_000)
    assert keep(2_000.0) == per_event
    # Sampled every minute, a week is 10,080 events: the week is the slower decay.
    minute = keep(2_000.0, np.array([60.0]))[0]
    assert minute == pytest.approx(0.5 ** (60 / HALFLIFE_S)) and minute > per_event
    # Sampled every hour, 2,000 events are 83 days: the events are the slower decay.
    assert keep(2_000.0, np.array([3_600.0]))[0] == per_event
    # A clock that went back does not make a tail forget faster than its events.
    assert keep(2_000.0, np.array([-60.0]))[0] == 1.0
    # A habit seen a day ago on a stream of one event a minute: 1,440 events later, at a
    # half per 2,000 events it would have faded to 0.6 of itself, by a week to 0.9.
    habit = [5.0] * 5
    day_later = history_of(habit + [0.1] * 1_440, 2_000.0, step_s=60.0)
    high = day_later[0, level_bin(np.array([5.0]))[0]]
    assert high == pytest.approx(5 * 0.5 ** (1 / 7), rel=1e-3)
    by_events = history_of(habit + [0.1] * 1_440, 2_000.0)
    assert by_events[0, level_bin(np.array([5.0]))[0]] == pytest.approx(
        5 * 0.5 ** (1_440 / 2_000), rel=1e-3)


def test_a_young_stream_takes_textbook_levels_at_a_discount_until_its_tail_is_trusted() -> None:
    level = np.array([6.0])
    assert rarity(level, history_of([]))[0] == pytest.approx(YOUNG_WEIGHT * 6.0)
    half = rarity(level, history_of([0.1] * 500))[0]
    assert half == pytest.approx(6.0 * (YOUNG_WEIGHT + (1 - YOUNG_WEIGHT) * 0.5))
    assert rarity(level, history_of([0.1] * 1_000))[0] == 6.0
    assert rarity(level, history_of([0.1] * 5_000))[0] == 6.0


def test_rarity_of_nan_and_negative_levels_is_zero() -> None:
    history = history_of([0.1] * 10)
    np.testing.assert_array_equal(rarity(np.array([np.nan]), history), [0.0])
    np.testing.assert_array_equal(rarity(np.array([-2.0]), history), [0.0])


def test_remember_decays_and_counts_only_learning_rows() -> None:
    history = np.zeros((3, N_LEVEL_BINS))
    history[:, 0] = 8.0
    level = np.array([5.0, 5.0, np.nan])
    learn = np.array([True, False, True])
    out = remember(history, level, learn, halflife=1.0)
    assert out is not history and history[0, 0] == 8.0  # the input is not changed
    b = int(level_bin(np.array([5.0]))[0])
    # learning row: decayed by half (half-life 1 event), then its level counted
    assert out[0, 0] == 4.0 and out[0, b] == 1.0 and out[0].sum() == 5.0
    np.testing.assert_array_equal(out[1], history[1])  # not learning: untouched
    assert out[2, 0] == 4.0 and out[2].sum() == 4.0    # NaN: decayed, nothing counted


def test_remember_with_a_half_life_halves_old_counts_after_that_many_events() -> None:
    history = history_of([8.0] * 1 + [0.1] * 100, halflife=100.0)
    high = history[0, level_bin(np.array([8.0]))[0]]
    assert high == pytest.approx(0.5, rel=1e-9)
    assert history.sum() == pytest.approx(sum(0.5 ** (k / 100) for k in range(101)))


def test_level_bins_cover_every_level_in_order() -> None:
    levels = np.array([np.nan, -1.0, 0.0, 0.24, 0.25, 3.99, 4.0, 7.0, 1e5, 1e300, np.inf])
    bins = level_bin(levels)
    assert bins[0] == bins[1] == bins[2] == 0
    assert np.all(np.diff(bins[2:]) >= 0) and bins[3] == 0 and bins[4] == 1
    assert bins.max() == N_LEVEL_BINS - 1


def test_score_is_the_level_over_level_at_one_clipped_to_the_unit_interval() -> None:
    levels = np.array([np.nan, -1.0, 0.0, 0.7 * LEVEL_AT_ONE, LEVEL_AT_ONE, 50.0, np.inf])
    np.testing.assert_allclose(score(levels), [0.0, 0.0, 0.0, 0.7, 1.0, 1.0, 1.0])
    # Score 0.7 means 1 in 10^4.9 (about 80,000): a two-sided 4.37 sigma event on one metric.
    assert score(normal([4.37]))[0] == pytest.approx(0.7, abs=0.002)


def test_rarity_forgets_surprises_older_than_a_few_half_lives() -> None:
    level = np.array([5.0])
    # Decayed counts: four in a row count a little under 4, a fifth makes them a habit.
    assert rarity(level, history_of([0.1] * 2_000 + [5.0] * 4, halflife=1_000.0))[0] == 5.0
    recent = history_of([0.1] * 2_000 + [5.0] * 5, halflife=1_000.0)
    assert rarity(level, recent)[0] < 3.0
    faded = history_of([5.0] * 5 + [0.1] * 2_000, halflife=1_000.0)
    assert rarity(level, faded)[0] == 5.0


def test_with_creep_a_surprise_half_an_octave_above_a_habit_is_that_habit() -> None:
    assert EDGES[FIRST_OCTAVE_BIN] == 4.0
    habit = history_of([0.1] * 1_996 + [9.0] * 4)   # bin [8, 11.3), seen 4 times
    crept = np.array([12.0])                          # the next bin, [11.3, 16)
    assert rarity(crept, habit)[0] == 12.0
    assert rarity(crept, habit, creep=1)[0] == pytest.approx(damped(12.0, -math.log10(4 / 2000)))
    # Only one bin: two bins up (16 and more) is beyond the habit.
    assert rarity(np.array([17.0]), habit, creep=1)[0] == 17.0
    # Per row: creep may differ by evidence.
    both = rarity(np.array([[12.0], [12.0]]), np.stack([habit, habit]), np.array([[1], [0]]))
    assert both[0, 0] < 4.0 and both[1, 0] == 12.0


def test_creep_never_reaches_below_level_4() -> None:
    # Below 4 the bins are a quarter level wide, and a level of 4 or more may not borrow
    # the sightings of lesser ones: 3.9 seen often does not make 4.1 a habit.
    habit = history_of([0.1] * 1_990 + [3.9] * 10)
    assert rarity(np.array([4.1]), habit, creep=1)[0] == 4.1
    assert rarity(np.array([3.95]), habit, creep=1)[0] < 3.0


def test_remember_keeps_the_histograms_precision_with_time_decay() -> None:
    # The arena's tails are float32: a float64 decay factor would upcast every wave's
    # histograms (four per stream) and cost the engine a tenth of its speed.
    history = np.ones((4, 3, N_LEVEL_BINS), dtype=np.float32)
    level = np.full((4, 3), 5.0)
    out = remember(history, level, np.ones(3, bool), 2_000.0, np.array([60.0, 300.0, 3600.0]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0], [0.5 ** (60 / HALFLIFE_S), 0.5 ** (300 / HALFLIFE_S),
                                              0.5 ** (1 / 2_000)], rtol=1e-6)
