"""`detector bench throughput` against the session broker, small: the report is complete and
consistent (counts match, latencies ordered). No timed assertions: the numbers are printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.cli import main

pytestmark = pytest.mark.integration

STREAMS, STEPS = 200, 20
LATENCY_RATE = 300.0


@pytest.mark.parametrize("processes", [1, 2])
def test_bench_throughput_small_load_writes_consistent_report(
        bootstrap_servers: str, clean_env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], processes: int) -> None:
    out = tmp_path / "bench.json"
    # The bench's own daemon serves /metrics: on a shared machine 9108 may be taken.
    clean_env.setenv("DETECTOR_SERVICE_METRICS_PORT", "0")
    # One run paces the latency phase's load itself, the other at half the measured rate.
    rate = ["--latency-rate", str(LATENCY_RATE)] if processes == 1 else []

    code = main(["bench", "throughput", "--streams", str(STREAMS),
                 "--events", str(STREAMS * STEPS), "--partitions", "2", "--latency-s", "6",
                 "--processes", str(processes), *rate,
                 "--json", str(out), "--bootstrap-servers", bootstrap_servers])

    assert code == 0
    report = json.loads(out.read_text())
    print(capsys.readouterr().out)
    assert report["processes"] == processes
    assert report["produced_events"] == STREAMS * STEPS
    if processes == 1:
        assert report["consumed_events"] == STREAMS * STEPS
    else:  # the other member scored a share; every offset is committed either way
        assert 0 < report["consumed_events"] < STREAMS * STEPS
    assert report["events_per_s"] > 0
    assert report["events_per_s_incl_join"] < report["events_per_s"]
    assert report["latency_spikes"] > 0
    assert report["latency_spikes_alerted"] > 0
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["latency_p99_ms"] <= report["latency_max_ms"]
    if rate:
        assert 0.5 * LATENCY_RATE < report["latency_load_events_per_s"] < 1.5 * LATENCY_RATE
    assert 0 < report["state_bytes_per_stream"] <= report["arena_bytes_per_stream"]
    assert report["engine_stream_steps_per_s"] > 0
    assert report["rss_mb"] > 0
    # Every stream's state was checkpointed and restores from the changelog.
    assert report["restored_streams"] == STREAMS + report["latency_spikes"]
    assert 0 < report["restore_s"]


@pytest.mark.parametrize("rate", ["0", "-5"])
def test_a_latency_rate_that_is_not_positive_is_refused_before_any_work(
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rate: str) -> None:
    code = main(["bench", "throughput", "--latency-rate", rate,
                 "--bootstrap-servers", "127.0.0.1:1"])

    assert code == 2
    assert "--latency-rate must be positive" in capsys.readouterr().err
