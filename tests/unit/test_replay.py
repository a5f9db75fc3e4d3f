"""CSV replay: one record at a time through the engine, causal, robust to bad rows."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from detector.cli import main
from detector.engine import EngineConfig
from detector.offline.replay import replay_file
from tests.conftest import REPO

CONFIG = EngineConfig(hidden_size=8, window=4, train_batch=4, warmup_events=20)


def write_series(path: Path, values: list[str], start: int = 1_400_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            writer.writerow([f"2014-05-{1 + (start + i * 300) // 86400 % 28:02d} "
                             f"{(i * 300 // 3600) % 24:02d}:{(i * 5) % 60:02d}:00", v])


def series(n: int = 200, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{50 + 10 * math.sin(i / 12) + rng.normal(0, 1):.4f}" for i in range(n)]


def read_scores(path: Path) -> np.ndarray:
    with path.open() as handle:
        return np.array([float(r["anomaly_score"]) for r in csv.DictReader(handle)])


def test_changing_a_future_record_never_changes_an_earlier_score(tmp_path: Path) -> None:
    values = series()
    write_series(tmp_path / "a.csv", values)
    changed = list(values)
    changed[150] = "500"
    write_series(tmp_path / "b.csv", changed)
    replay_file(tmp_path / "a.csv", tmp_path / "out/a.csv", CONFIG)
    replay_file(tmp_path / "b.csv", tmp_path / "out/b.csv", CONFIG)
    a, b = read_scores(tmp_path / "out/a.csv"), read_scores(tmp_path / "out/b.csv")
    np.testing.assert_array_equal(a[:150], b[:150])
    assert b[150] > a[150]


def test_bad_rows_get_a_score_and_a_warning_with_their_row_number(tmp_path: Path) -> None:
    values = series(80)
    values[40], values[41] = "", "n/a"
    write_series(tmp_path / "s.csv", values)
    done = replay_file(tmp_path / "s.csv", tmp_path / "out.csv", CONFIG)
    scores = read_scores(tmp_path / "out.csv")
    assert len(scores) == 80 and np.isfinite(scores).all()
    assert any(":42:" in w for w in done.warnings) and any(":43:" in w for w in done.warnings)


def test_replay_command_mirrors_a_folder_of_csv_files(tmp_path: Path, clean_env) -> None:
    write_series(tmp_path / "in/cat1/x.csv", series(60))
    write_series(tmp_path / "in/cat2/y.csv", series(60, seed=1))
    assert main(["replay", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--jobs", "1"]) == 0
    for rel in ("cat1/x.csv", "cat2/y.csv"):
        with (tmp_path / "out" / rel).open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 60
        assert list(rows[0]) == ["timestamp", "anomaly_score", "alert", "raw_score",
                                 "raw_error", "expected_value", "metrics"]


def test_spatial_margin_scores_a_new_extreme_as_one(tmp_path: Path) -> None:
    values = series(120)
    values[100] = "75"  # above the range so far (~39..61) by more than 5 % of it
    write_series(tmp_path / "s.csv", values)
    on = EngineConfig(**{**CONFIG.__dict__, "spatial_margin": 0.05,
                         "spatial_value_margin": 0.05, "spatial_warmup_s": 0.0})
    replay_file(tmp_path / "s.csv", tmp_path / "on.csv", on)
    with (tmp_path / "on.csv").open() as handle:
        raw = [float(r["raw_score"]) for r in csv.DictReader(handle)]
    assert raw[100] == 1.0


def test_spatial_rule_catches_a_sustained_shift_that_sets_no_new_extreme(tmp_path: Path) -> None:
    # Values swing between 40 and 60 from 50, then settle at 58: no single value leaves the
    # range 40..60, but their running mean leaves its own range (about 49.6..50.4).
    values = ["50"] + ["40" if i % 2 else "60" for i in range(149)] + ["58"] * 50
    write_series(tmp_path / "s.csv", values)
    raws = {}
    for halflife in (0.0, 16.0):
        config = EngineConfig(**{**CONFIG.__dict__, "spatial_margin": 0.05,
                                 "spatial_value_margin": 0.05, "spatial_halflife": halflife,
                                 "spatial_warmup_s": 0.0})
        replay_file(tmp_path / "s.csv", tmp_path / f"{halflife}.csv", config)
        with (tmp_path / f"{halflife}.csv").open() as handle:
            raws[halflife] = np.array([float(r["raw_score"]) for r in csv.DictReader(handle)])
    assert (raws[16.0][20:150] < 1.0).all(), "the steady swing is not a shift"
    assert (raws[16.0][150:160] == 1.0).any()
    assert (raws[0.0][150:] < 1.0).all(), "without the mean, no value is a new extreme"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def slow_wave_rows(n: int, scales: list[float], spike: tuple[int, int], seed: int,
                   kinds: list[str] | None = None) -> list[list[str]]:
    """Rows (timestamp, values) of a stream 5 minutes apart whose metrics follow one slow wave
    at their own scale: "noisy" ones (the default) with 3 % noise, "smooth" ones without,
    "flat" ones constant. At spike = (row, metric) that metric is 8 times its value."""
    rng = np.random.default_rng(seed)
    kinds = kinds or ["noisy"] * len(scales)
    rows = []
    for i in range(n):
        level = 1 + 0.2 * math.sin(i / 20)
        row = [scale if kind == "flat" else scale * level * (
            math.exp(rng.normal(0, 0.03)) if kind == "noisy" else 1.0)
            for scale, kind in zip(scales, kinds, strict=True)]
        if i == spike[0]:
            row[spike[1]] *= 8
        rows.append([iso(1_400_000_000 + 300 * i), *(f"{v:.4f}" for v in row)])
    return rows


def test_result_rows_carry_expected_values_and_ranked_metrics_on_alert_rows(
        tmp_path: Path) -> None:
    # flows spike; bytes and packets stay as usual
    rows = slow_wave_rows(300, [1e6, 1_500, 40], spike=(250, 2), seed=2)
    write_table(tmp_path / "s.csv", ["timestamp", "bytes", "packets", "flows"], rows)
    replay_file(tmp_path / "s.csv", tmp_path / "out.csv", CONFIG)
    with (tmp_path / "out.csv").open() as handle:
        out = list(csv.DictReader(handle))
    assert list(out[0])[5:] == ["expected_bytes", "expected_packets", "expected_flows",
                                "metrics"]
    assert out[250]["alert"] == "1", "the spike must alert for this test to mean anything"
    assert all((row["metrics"] != "") == (row["alert"] == "1") for row in out)
    for row, source in zip(out[100:250], rows[100:250], strict=True):  # learned, before it
        for j, metric in enumerate(("bytes", "packets", "flows")):
            assert float(row[f"expected_{metric}"]) == pytest.approx(float(source[j + 1]),
                                                                      rel=0.3)
    ranked = json.loads(out[250]["metrics"])
    assert ranked[0][0] == "flows" and ranked[0][1] > 0.5
    # Every metric is ranked, however small its share, largest first, as the alert lists them.
    assert sorted(name for name, _ in ranked) == ["bytes", "flows", "packets"]
    assert [share for _, share in ranked] == sorted((share for _, share in ranked), reverse=True)
    assert sum(share for _, share in ranked) == pytest.approx(1.0, abs=1e-3)
    assert float(out[250]["expected_flows"]) < float(rows[250][3]) / 3


@pytest.mark.parametrize(("header", "rows", "problem"), [
    (["time", "value"], [["1", "2"]], "bad header: the first column must be 'timestamp'"),
    (["timestamp"], [["1"]], "bad header: no metric column"),
    (["timestamp", "a", "a"], [["1", "2", "3"]], "bad header: column 'a' appears twice"),
    (["timestamp", "a", "host"], [["1", "2", "x"], ["2", "3", "y"]],
     "no numeric value in column 'host'"),
    (["timestamp", "value"], [], "no data row after the header"),
    (["timestamp", *(f"m{j:02d}" for j in range(70))], [["1", *["0.5"] * 70]],
     ":2: 70 metrics per row, more than DETECTOR_MODEL_MAX_METRICS=64"),
])
def test_replay_of_an_unusable_csv_exits_2_with_one_line_naming_the_file(
        tmp_path: Path, clean_env, capsys, header: list[str], rows: list[list[str]],
        problem: str) -> None:
    good = write_table(tmp_path / "in/good.csv", ["timestamp", "value"], [["1", "2"]])
    bad = write_table(tmp_path / "in/bad.csv", header, rows)
    assert main(["replay", str(good), str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"detector: {bad}") and problem in err
    assert not (tmp_path / "out").exists(), "nothing is replayed when one input is unusable"


def test_a_wide_host_is_scored_with_the_defaults_and_its_spiking_metric_ranked_first(
        tmp_path: Path) -> None:
    rows = slow_wave_rows(400, [10 * (j + 1) for j in range(19)], spike=(350, 13), seed=4)
    header = ["timestamp", *(f"m{j:02d}" for j in range(19))]
    write_table(tmp_path / "host.csv", header, rows)
    replay_file(tmp_path / "host.csv", tmp_path / "out.csv", EngineConfig())  # the defaults
    with (tmp_path / "out.csv").open() as handle:
        out = list(csv.DictReader(handle))
    assert out[350]["alert"] == "1" and json.loads(out[350]["metrics"])[0][0] == "m13"
    assert sum(row["alert"] == "1" for row in out) <= 3


def test_an_alert_ranks_every_metric_as_the_daemon_does_even_one_without_a_share(
        tmp_path: Path) -> None:
    rows = slow_wave_rows(300, [1e6, 1_500, 7.0], spike=(250, 0), seed=5,
                          kinds=["noisy", "smooth", "flat"])
    write_table(tmp_path / "s.csv", ["timestamp", "bytes", "smooth", "flat"], rows)
    replay_file(tmp_path / "s.csv", tmp_path / "out.csv", CONFIG)
    with (tmp_path / "out.csv").open() as handle:
        out = list(csv.DictReader(handle))
    assert out[250]["alert"] == "1", "the spike must alert for this test to mean anything"
    ranked = json.loads(out[250]["metrics"])
    # HitRate reads the whole order, so replay writes what the alert carries: every valid
    # metric, the flat one too, with shares of 4 significant digits, largest first.
    assert [name for name, _ in ranked] == ["bytes", "smooth", "flat"]
    assert ranked[0][1] > 0.99 and 0.0 <= ranked[2][1] < 5e-5  # 0 at 4 decimals


def test_too_many_metrics_is_an_error_in_a_parallel_replay_too_not_silent_zeros(
        tmp_path: Path) -> None:
    header = ["timestamp", *(f"m{j:02d}" for j in range(19))]
    bad = write_table(tmp_path / "wide.csv", header,
                      [[iso(1_400_000_000 + 60 * i), *["0.5"] * 19] for i in range(50)])
    env = {"PATH": "/usr/bin:/bin", "DETECTOR_MODEL_MAX_METRICS": "8"}
    proc = subprocess.run([sys.executable, "-m", "detector", "replay", str(bad),
                           str(tmp_path / "wide.csv"), "--out", str(tmp_path / "out"),
                           "--jobs", "2"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"detector: {bad}:2: 19 metrics per row, more than DETECTOR_MODEL_MAX_METRICS=8 "
        "allows (set it to 19 or more)"]
    env["DETECTOR_MODEL_MAX_METRICS"] = "19"
    assert subprocess.run([sys.executable, "-m", "detector", "replay", str(bad), "--out",
                           str(tmp_path / "out")], env=env, cwd=REPO, capture_output=True,
                          timeout=120).returncode == 0
