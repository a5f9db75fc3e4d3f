"""The simulator's slow incidents: a ramp, a moved daily pattern, a noise burst, a packet flood."""

from __future__ import annotations

import numpy as np
import pytest

from detector.sim.traffic import METRICS, RAMP_STEPS, plan_traffic
from tests.unit.test_simulate_traffic import STEPS_PER_DAY, with_and_without


@pytest.mark.parametrize("seed", [1, 2])
def test_ramp_raises_bytes_out_linearly_over_its_steps_then_holds_its_top(seed: int) -> None:
    incident, hit, clean = with_and_without("ramp", 100, 400, seed)
    assert incident.end_index == 399  # lasts to the end of the series
    factor = hit["bytes_out"] / clean["bytes_out"]
    assert np.array_equal(hit["bytes_out"][:100], clean["bytes_out"][:100])
    climb = factor[100:100 + RAMP_STEPS]
    np.testing.assert_allclose(np.diff(climb), np.diff(climb)[0])  # a straight line
    top = factor[100 + RAMP_STEPS - 1]
    assert 2.0 <= top <= 3.5 and np.allclose(factor[100 + RAMP_STEPS - 1:], top)
    assert factor[100] < 1.05  # no step at the start: it creeps up
    for m in ("bytes_in", "packets_in", "flows"):
        assert np.array_equal(hit[m], clean[m]), m


def test_phase_shift_moves_the_daily_peak_by_hours_for_good() -> None:
    start = STEPS_PER_DAY * 2
    incident, hit, clean = with_and_without("phase_shift", start, STEPS_PER_DAY * 5, seed=3)
    assert incident.end_index == STEPS_PER_DAY * 5 - 1
    assert np.array_equal(hit["bytes_in"][:start], clean["bytes_in"][:start])

    def peak_hour(values: np.ndarray) -> float:
        by_step = values.reshape(-1, STEPS_PER_DAY).mean(axis=0)
        smooth = np.convolve(np.r_[by_step[-12:], by_step, by_step[:12]], np.ones(25) / 25,
                             mode="valid")
        return float(np.argmax(smooth) / 12)

    moved = peak_hour(hit["bytes_in"][start:]) - peak_hour(clean["bytes_in"][start:])
    assert 3.5 <= abs((moved + 12) % 24 - 12) <= 8.5
    ratio = hit["bytes_in"][start:] / clean["bytes_in"][start:]
    assert ratio.max() > 1.3 and ratio.min() < 0.8  # higher at some hours, lower at others


def test_noise_burst_widens_the_noise_for_its_steps_and_keeps_the_level() -> None:
    incident, hit, clean = with_and_without("noise_burst", 150, 300, seed=4)
    assert incident.end_index == 150 + 23  # default: 24 steps
    during = slice(150, 174)
    spread = np.log(hit["bytes_in"][during] / clean["bytes_in"][during])
    assert np.std(np.log(hit["bytes_in"][during])) > 3 * np.std(np.log(clean["bytes_in"][during]))
    assert abs(np.median(spread)) < 0.3
    for m in METRICS:
        assert np.array_equal(hit[m][174:], clean[m][174:]), m


def test_small_packet_flood_multiplies_packets_and_shrinks_bytes_per_packet() -> None:
    incident, hit, clean = with_and_without("small_packets", 150, 300, seed=5)
    assert incident.end_index == 150 + 11  # default: 12 steps
    during = slice(150, 162)
    rise = hit["packets_in"][during] / clean["packets_in"][during]
    assert np.all((rise > 3.5) & (rise < 8.5))
    size_before = np.median(clean["bytes_in"][during] / clean["packets_in"][during])
    size_during = np.median(hit["bytes_in"][during] / hit["packets_in"][during])
    assert size_during < size_before / 3
    assert np.all(hit["bytes_in"][during] > clean["bytes_in"][during])  # small packets add bytes
    assert np.all(hit["bytes_out"][during] == clean["bytes_out"][during])
    assert np.median(hit["flows"][during]) > 3 * np.median(clean["flows"][during])
    for m in METRICS:
        assert np.array_equal(hit[m][162:], clean[m][162:]), m


@pytest.mark.parametrize("kind", ["ramp", "phase_shift"])
def test_permanent_kinds_refuse_a_duration(kind: str) -> None:
    with pytest.raises(ValueError, match="end of the series"):
        plan_traffic(2, seed=0, durations={kind: 5})
