"""`detector bench corpus` end to end on a tiny simulated traffic corpus, through the command.

Two days per stream (one of history), spikes, outages and level shifts plus a clean stream: the
daemon's defaults must catch the injected spikes at the shipped threshold, and the same run
twice must write the same summary.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from detector.sim.corpus import TrafficCorpusSpec, write_traffic_corpus
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SPEC = TrafficCorpusSpec(per_kind=2, clean=1, days=2.0, history_days=1.0, seed=7,
                         kinds=("spike", "outage", "level_shift"))


def bench(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", "bench", "corpus", str(root), "--out", str(out),
         "--jobs", "2", *extra], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin"})


def test_bench_corpus_catches_injected_spikes_at_the_shipped_threshold(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_traffic_corpus(root, SPEC)
    first = bench(root, tmp_path / "run1")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "run1/summary.json").read_text())
    ours = summary["detectors"]["lstm-detector"]
    assert ours["shipped_threshold"] == 0.7
    spike = ours["categories"]["spike"]
    assert spike["windows"] == 2 and spike["windows_detected"] == 2, spike
    assert ours["categories"]["clean"]["false_positives"] == 0
    standard = ours["shipped"]["standard"]
    assert standard["threshold"] == 0.7
    assert standard["score"] > 50 and standard["fp_per_stream_day"] <= 0.5
    assert summary["stream_days"] == pytest.approx(7.0)
    assert summary["scored_rows"] == 7 * 288 and summary["windows"] == 6
    zscore = summary["detectors"]["rolling z-score"]
    assert zscore["shipped_threshold"] == 4.0 and zscore["window"] == 1000
    assert zscore["swept"]["standard"]["score"] >= zscore["shipped"]["standard"]["score"]
    with next((tmp_path / "run1/scores/spike").glob("*.csv")).open() as handle:
        has_ranking = "metrics" in next(csv.reader(handle))
    if has_ranking:
        assert isinstance(ours["hitrate"], dict)
    else:
        assert ours["hitrate"] == "n/a (no ranking in replay output)"
    run = json.loads((tmp_path / "run1/run.json").read_text())
    assert run["rules"] == "corpus" and run["files"] == 7 and run["records"] == 7 * 576
    assert run["engine_config"]["threshold"] == 0.7 and run["wall_time_s"] > 0
    assert run["corpus_root"] == str(root.resolve())
    assert "lstm-detector shipped" in first.stdout and "HitRate@100%" in first.stdout
    assert (tmp_path / "run1/report/index.html").is_file()

    second = bench(root, tmp_path / "run2", "--no-report")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "run2/summary.json").read_bytes() == (
        tmp_path / "run1/summary.json").read_bytes()


def test_bench_corpus_refuses_files_wider_than_the_engine_takes(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_traffic_corpus(root, TrafficCorpusSpec(per_kind=1, clean=0, days=2.0,
                                                 history_days=1.0, kinds=("spike",)))
    proc = subprocess.run(
        [sys.executable, "-m", "detector", "bench", "corpus", str(root), "--out",
         str(tmp_path / "run"), "--no-report"], cwd=REPO, capture_output=True, text=True,
        timeout=300, env={"PATH": "/usr/bin:/bin", "DETECTOR_MODEL_MAX_METRICS": "3"})
    assert proc.returncode == 2
    assert "4 metrics, but DETECTOR_MODEL_MAX_METRICS is 3" in proc.stderr
