"""Reading an input CSV: one set of rules for replay, train, evaluate, report and the benches."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import InputFileError
from detector.offline.csv_format import (
    check_input,
    parse_stamp,
    read_input,
    stamp_seconds,
)
from detector.offline.replay import replay_file
from detector.offline.training import load_streams
from tests.unit.test_replay import CONFIG, series

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_read_input_takes_iso_and_epoch_second_timestamps(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.csv", [
        "timestamp,value", f"{iso(T0)},1", f"{T0 + 60},2", f"{T0 + 120}.5,3",
        "2023-11-14T22:16:20Z,4", "2023-11-14T23:17:20+01:00,5"])
    source = read_input(path)
    assert source.seconds.tolist() == [T0, T0 + 60, T0 + 120.5, T0 + 180, T0 + 240]
    assert source.stamps[1] == str(T0 + 60) and source.problems == ()


def test_replay_of_epoch_second_timestamps_scores_as_the_same_stamps_in_iso(
        tmp_path: Path) -> None:
    values = series(120)
    stamps = [T0 + 300 * i for i in range(120)]
    write_lines(tmp_path / "iso.csv", ["timestamp,value", *(
        f"{iso(t)},{v}" for t, v in zip(stamps, values, strict=True))])
    write_lines(tmp_path / "epoch.csv", ["timestamp,value", *(
        f"{t},{v}" for t, v in zip(stamps, values, strict=True))])
    outputs = {}
    for name in ("iso", "epoch"):
        done = replay_file(tmp_path / f"{name}.csv", tmp_path / "out" / f"{name}.csv", CONFIG)
        assert done.warnings == []
        with (tmp_path / "out" / f"{name}.csv").open() as handle:
            outputs[name] = [row[1:] for row in csv.reader(handle)]
    assert outputs["epoch"] == outputs["iso"]


def test_a_bad_timestamp_takes_the_previous_rows_time_and_is_reported_with_its_line(
        tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.csv", [
        "timestamp,value", "soon,0", f"{iso(T0)},1", "", f"{iso(T0 + 60)},2", "yesterday,3",
        "2023-02-30 00:00:00,4", f"{iso(T0 + 120)},5", "99999999999,6"])
    source = read_input(path)
    assert source.n == 7, "a row with a bad timestamp is kept, in its place"
    assert source.seconds.tolist() == [T0, T0, T0 + 60, T0 + 60, T0 + 60, T0 + 120, T0 + 120]
    assert source.values[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert [p.split(": ", 1)[0] for p in source.problems] == [
        f"{path}:2", f"{path}:6", f"{path}:7", f"{path}:9"]  # line 4 is blank
    assert "'soon' is neither ISO-8601 nor epoch seconds" in source.problems[0]
    assert source.problems[0].endswith("using the first valid timestamp")
    assert source.problems[1].endswith("using the previous row's timestamp")


def test_a_bad_value_is_nan_and_reported_and_extra_cells_are_ignored(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.csv", [
        "timestamp, a ,b", f"{T0},1,2", f"{T0 + 1},,2", f"{T0 + 2},n/a,inf", f"{T0 + 3},4",
        f"{T0 + 4},5,6,extra", f"{T0 + 5}, 7 ,1e3"])
    source = read_input(path)
    assert source.metrics == ("a", "b")
    np.testing.assert_array_equal(source.values, [
        [1, 2], [math.nan, 2], [math.nan, math.nan], [4, math.nan], [5, 6], [7, 1000]])
    assert [p.split(": ", 1) for p in source.problems] == [
        [f"{path}:{line}", "missing or unparsable value; scored, not learned from"]
        for line in (3, 4, 5)]


UNUSABLE = [
    ([], "empty file"),
    (["time,value", "1,2"], "bad header: the first column must be 'timestamp', got 'time'"),
    (["timestamp", "1"], "bad header: no metric column after 'timestamp'"),
    (["timestamp,a,", "1,2,3"], "bad header: column 3 has no name"),
    (["timestamp,a,a", "1,2,3"], "bad header: column 'a' appears twice"),
    (["timestamp,value"], "no data row after the header"),
    (["timestamp,value", "", ""], "no data row after the header"),
    (["timestamp,a,host", "1,2,x", "2,3,y"], "no numeric value in column 'host'"),
    (["timestamp,a,b", "1,,", "2,,"], "no numeric value in columns 'a', 'b'"),
    (["timestamp,value", "monday,1", "tuesday,2"], "no valid timestamp in column 'timestamp'"),
]


@pytest.mark.parametrize("read", [read_input, lambda path: check_input(path, 8)],
                         ids=["read_input", "check_input"])
@pytest.mark.parametrize(("lines", "problem"), UNUSABLE)
def test_an_unusable_file_is_an_input_file_error_naming_it(
        tmp_path: Path, read: Callable[[Path], object], lines: list[str], problem: str) -> None:
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(InputFileError) as caught:
        read(path)
    assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)


def test_training_reads_a_file_as_replay_does_keeping_bad_timestamp_rows(
        tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.csv", [
        "timestamp,value", f"{T0},1", "noon,2", f"{T0 + 60},", f"{T0 + 120},4"])
    problems: list[str] = []
    (stream,) = load_streams([(path, "s")], problems.append)
    assert problems == list(read_input(path).problems) and len(problems) == 2
    assert [e.ts for e in stream.events] == [T0, T0, T0 + 60, T0 + 120]
    assert [e.metrics["value"] for e in stream.events][:2] == [1, 2]
    assert math.isnan(stream.events[2].metrics["value"])


def test_parse_stamp_prefers_iso_and_keeps_the_range() -> None:
    assert parse_stamp("20231114") == datetime(2023, 11, 14, tzinfo=UTC).timestamp()
    assert parse_stamp("0") == 0.0 and parse_stamp("+1700000000.") == T0
    for bad in ("-1", "1700000000000", "1e9", "", "nan"):
        assert isinstance(parse_stamp(bad), str), bad


@settings(max_examples=50, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30)),
                min_size=1, max_size=20),
       st.sampled_from(["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                        "%Y-%m-%d"]))
def test_plain_iso_stamps_read_at_once_equal_one_by_one(moments: list[datetime],
                                                       layout: str) -> None:
    stamps = [m.strftime(layout) for m in moments]
    seconds, bad = stamp_seconds(stamps)
    assert bad == [] and seconds.tolist() == [parse_stamp(s) for s in stamps]
    assert seconds.tolist() == [
        (datetime.strptime(s, layout).replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
        / timedelta(seconds=1) for s in stamps]
