"""`detector bench throughput` against the session broker, small: the report is complete and
consistent (counts match, latencies ordered). No timed assertions: the numbers are printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.cli import main

pytestmark = pytest.mark.integration

STREAMS, STEPS = 200, 20


@pytest.mark.parametrize("processes", [1, 2])
def test_bench_throughput_small_load_writes_consistent_report(
        bootstrap_servers: str, clean_env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], processes: int) -> None:
    out = tmp_path / "bench.json"

    code = main(["bench", "throughput", "--streams", str(STREAMS),
                 "--events", str(STREAMS * STEPS), "--partitions", "2", "--latency-s", "6",
                 "--processes", str(processes),
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
    assert 0 < report["state_bytes_per_stream"] <= report["arena_bytes_per_stream"]
    assert report["engine_stream_steps_per_s"] > 0
    assert report["rss_mb"] > 0
    # Every stream's state was checkpointed and restores from the changelog.
    assert report["restored_streams"] == STREAMS + report["latency_spikes"]
    assert 0 < report["restore_s"]
