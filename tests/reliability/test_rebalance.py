"""Rebalance: members join and leave a group mid-stream; nothing is lost, changed or shared.

Member A runs throughout. B joins (the partitions split), then leaves with SIGTERM (A takes
them back from B's last checkpoint); C joins and is killed with SIGKILL (A takes its
partitions back after the session timeout). Input arrives in chunks between these moves, so
each happens mid-stream. Compared with an uninterrupted run over the same topic: the same
alerts after de-duplication and the same final state; and no partition was ever owned by two
members at once.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.kafka_tools import (
    log_lines,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.reliability.conftest import reliability_env, run_to_end
from tests.reliability.state_tools import assert_same_run, chunked_scenario

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STEPS = 200


def wait_for(log: Path, event: str, proc, *, after: int = 0, timeout_s: float = 60.0
             ) -> list[dict]:
    """Log lines of `event` once there are more than `after` of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [line for line in log_lines(log) if line.get("event") == event]
        if len(lines) > after:
            return lines
        assert proc.poll() is None, f"daemon exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError(f"no {event} in {log.name} within {timeout_s}s")


def wait_for_all_partitions(log: Path, proc, *, after: int, timeout_s: float) -> None:
    """Until one of the member's assignments after the first `after` holds all 4 partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = wait_for(log, "partitions_assigned", proc, after=after,
                         timeout_s=max(deadline - time.monotonic(), 0.1))
        if any(len(line["partitions"]) == 4 for line in lines[after:]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{log.name}: no assignment of all 4 partitions within {timeout_s}s")


def ownership(log: Path, end: float) -> dict[str, list[tuple[float, float]]]:
    """Per partition, the [assigned, revoked) time spans of one member, from its log."""
    spans: dict[str, list[tuple[float, float]]] = {}
    held: dict[str, float] = {}
    for line in log_lines(log):
        at = datetime.fromisoformat(line.get("timestamp", "1970-01-01T00:00:00Z")).timestamp()
        if line.get("event") == "partitions_assigned":
            for p in line["partitions"]:
                held[p] = at
        elif line.get("event") == "partitions_revoked":
            for p in line["partitions"]:
                if p in held:
                    spans.setdefault(p, []).append((held.pop(p), at))
    for p, since in held.items():
        spans.setdefault(p, []).append((since, end))
    return spans


def test_members_joining_and_leaving_lose_and_change_nothing(bootstrap_servers: str,
                                                             tmp_path: Path) -> None:
    scenario, feed = chunked_scenario(bootstrap_servers, "rebalance", streams=100,
                                      steps=STEPS, seed=9)
    group = f"{scenario.topic}-g"
    env = reliability_env(scenario, group)
    feed(60)
    logs = {m: tmp_path / f"{m}.log" for m in "ABC"}
    a = start_daemon(env, logs["A"])
    try:
        wait_for(logs["A"], "partition_restored", a)
        wait_committed(bootstrap_servers, group, 60 * 100, timeout_s=60, proc=a)

        b = start_daemon(env, logs["B"])                  # B joins: the partitions split
        wait_for(logs["B"], "partition_restored", b)
        feed(50)
        wait_committed(bootstrap_servers, group, 110 * 100, timeout_s=60, proc=b)
        before = len(wait_for(logs["A"], "partitions_assigned", a))
        assert stop_daemon(b) == 0                        # B leaves: A takes all back
        b_end = time.time()
        assert len(wait_for(logs["A"], "partitions_assigned", a, after=before)[-1]
                   ["partitions"]) == 4
        feed(40)

        c = start_daemon(env, logs["C"])                  # C joins, then dies
        wait_for(logs["C"], "partition_restored", c)
        wait_committed(bootstrap_servers, group, 150 * 100, timeout_s=60, proc=c)
        feed(STEPS - 150)
        time.sleep(0.3)
        before = len(wait_for(logs["A"], "partitions_assigned", a))
        c.send_signal(signal.SIGKILL)
        c.wait()
        c_end = time.time()
        # A takes C's partitions back once C's session times out. C may have committed the
        # whole feed before it died; waiting for the commits alone could then stop A before
        # it ever restored them.
        wait_for_all_partitions(logs["A"], a, after=before, timeout_s=120)

        wait_committed(bootstrap_servers, group, scenario.total, timeout_s=120, proc=a)
    finally:
        assert stop_daemon(a) == 0
    a_end = time.time()

    # Each joiner took partitions over from its last checkpoint, and A restored them after.
    restored_by_a = [line for line in log_lines(logs["A"])
                     if line.get("event") == "partition_restored"]
    assert sum(line["streams"] > 0 for line in restored_by_a) >= 4
    for member in "BC":
        restored = [line for line in log_lines(logs[member])
                    if line.get("event") == "partition_restored"]
        assert restored, f"{member} never owned a partition"
    # Never two owners at once.
    spans = [ownership(logs["A"], a_end), ownership(logs["B"], b_end),
             ownership(logs["C"], c_end)]
    for partition in {p for member in spans for p in member}:
        held = sorted(span for member in spans for span in member.get(partition, []))
        for (_, end), (start, _) in zip(held, held[1:], strict=False):
            assert start >= end, f"{partition} owned twice between {start} and {end}"

    reference = f"{scenario.topic}-ref"
    run_to_end(scenario, reliability_env(scenario, reference), tmp_path / "reference.log")
    published, duplicates = assert_same_run(scenario, group, reference)
    print(f"\nrebalance: join, leave, join, kill -9; {published} alerts published, "
          f"{duplicates} duplicates removed by alert_id, 0 lost, state equal")
