"""Which way a metric may alert (detector/engine/direction.py, DETECTOR_ALERT_DIRECTIONS)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.cli import main
from detector.engine import EngineConfig
from detector.engine.direction import BOTH, DOWN, UP, allowed, for_stream, one_sided, signed
from detector.errors import SettingsError
from detector.settings_env import load_settings
from tests.conftest import REPO

METRICS = ("errors", "errors_5xx", "latency_ms", "requests")


def test_a_stream_glob_mapped_to_a_direction_sets_every_metric() -> None:
    codes = for_stream("cache-7", METRICS, {"cache-*": "down"})
    assert codes.dtype == np.int8 and codes.tolist() == [DOWN] * 4
    assert for_stream("web-1", METRICS, {"web-?": "up"}).tolist() == [UP] * 4


def test_a_metric_glob_map_sets_each_metric_and_leaves_the_rest_both() -> None:
    rule = {"web-*": {"errors*": "up", "latency_ms": "up", "requests": "down"}}
    assert for_stream("web-1", METRICS, rule).tolist() == [UP, UP, UP, DOWN]
    partial = {"web-*": {"errors": "up"}}
    assert for_stream("web-1", METRICS, partial).tolist() == [UP, BOTH, BOTH, BOTH]


def test_the_first_matching_pattern_wins_for_streams_and_metrics() -> None:
    rules = {"web-canary*": "both", "web-*": "up", "*": "down"}
    assert for_stream("web-canary-2", METRICS, rules).tolist() == [BOTH] * 4
    assert for_stream("web-2", METRICS, rules).tolist() == [UP] * 4
    assert for_stream("db-1", METRICS, rules).tolist() == [DOWN] * 4
    metric_order = {"*": {"errors_5xx": "down", "errors*": "up", "*": "both"}}
    assert for_stream("x", METRICS, metric_order).tolist() == [UP, DOWN, BOTH, BOTH]
    # The first stream match is final even when its metric map matches nothing.
    shadowed = {"web-*": {"nothing": "up"}, "*": "down"}
    assert for_stream("web-1", METRICS, shadowed).tolist() == [BOTH] * 4


def test_an_unmatched_stream_alerts_both_ways() -> None:
    assert for_stream("db-1", METRICS, {"web-*": "up"}).tolist() == [BOTH] * 4
    assert for_stream("db-1", METRICS, {}).tolist() == [BOTH] * 4
    assert for_stream("db-1", (), {"*": "up"}).size == 0


def test_patterns_are_case_sensitive_globs_not_substrings() -> None:
    assert for_stream("Web-1", METRICS, {"web-*": "up"}).tolist() == [BOTH] * 4
    assert for_stream("my-web-1", METRICS, {"web-*": "up"}).tolist() == [BOTH] * 4


def test_signed_measures_a_deviation_in_its_allowed_direction_only() -> None:
    value = np.array([[3.0, -3.0, 3.0, -3.0, 3.0, -3.0]])
    direction = np.array([[BOTH, BOTH, UP, UP, DOWN, DOWN]])
    np.testing.assert_array_equal(signed(value, direction), [[3, 3, 3, 0, 0, 3]])


def test_allowed_zeroes_a_deviation_against_its_metric_direction_and_keeps_its_sign() -> None:
    value = np.array([[3.0, -3.0, 3.0, -3.0, 3.0, -3.0, 0.0]])
    direction = np.array([[BOTH, BOTH, UP, UP, DOWN, DOWN, UP]])
    np.testing.assert_array_equal(allowed(value, direction), [[3, -3, 3, 0, 0, -3, 0]])


def test_one_sided_needs_every_valid_metric_restricted() -> None:
    direction = np.array([[UP, DOWN], [UP, BOTH], [UP, BOTH], [BOTH, BOTH]])
    valid = np.array([[True, True], [True, True], [True, False], [False, False]])
    assert one_sided(direction, valid).tolist() == [True, False, True, False]


def test_directions_setting_reaches_the_engine_config(clean_env) -> None:
    clean_env.setenv("DETECTOR_ALERT_DIRECTIONS",
                     '{"web-*": {"errors*": "up", "*": "both"}, "cache-*": "down"}')
    config = EngineConfig.from_settings(load_settings())
    assert config.directions == {"web-*": {"errors*": "up", "*": "both"}, "cache-*": "down"}
    assert list(config.directions) == ["web-*", "cache-*"]  # the order decides
    assert for_stream("web-3", METRICS, config.directions).tolist() == [UP, UP, BOTH, BOTH]


@pytest.mark.parametrize(("value", "named"), [
    ('{"x": "sideways"}', "'sideways' for 'x' is not one of up, down, both"),
    ('{"web-*": {"errors": "UP"}}', "'UP' for 'web-*', metric 'errors' is not one of"),
    ('["up"]', "valid dictionary"),
])
def test_a_bad_direction_is_a_settings_error_naming_the_variable_and_value(
        clean_env, value: str, named: str) -> None:
    clean_env.setenv("DETECTOR_ALERT_DIRECTIONS", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("DETECTOR_ALERT_DIRECTIONS: ") and named in message, message


def test_a_bad_direction_exits_2_with_one_line(clean_env, capsys) -> None:
    clean_env.setenv("DETECTOR_ALERT_DIRECTIONS", '{"x": "sideways"}')
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DETECTOR_ALERT_DIRECTIONS" in err[0] and "sideways" in err[0]


def test_the_readme_example_means_what_the_readme_says(clean_env) -> None:
    line = next(line for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("DETECTOR_ALERT_DIRECTIONS='"))
    clean_env.setenv("DETECTOR_ALERT_DIRECTIONS", line.split("=", 1)[1].strip("'"))
    directions = EngineConfig.from_settings(load_settings()).directions
    # errors* of web-* streams only up, their other metrics both ways; cache-* only down
    assert for_stream("web-1", METRICS, directions).tolist() == [UP, UP, BOTH, BOTH]
    assert for_stream("cache-1", ("hit_ratio",), directions).tolist() == [DOWN]
    assert for_stream("db-1", METRICS, directions).tolist() == [BOTH] * 4
