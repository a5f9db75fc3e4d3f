"""Membership churn under a continuous feed: members join, leave and are killed while others
commit every second, so commits overlap rebalances all the time.

Events arrive steadily for the whole test. The group changes again and again: a member
joins, a member leaves with SIGTERM, a member is killed with SIGKILL. Each rebalance takes
seconds (the broker holds a join for half the session timeout), so the commits of every
second fail all through it. No member may exit unless it was killed or told to stop (a commit
refused by a rebalance must not crash it), and at the end the alerts, once de-duplicated by
id, and the state equal those of an uninterrupted run, with every offset committed.

The next change waits until the group has settled (every partition owned by exactly one
running member): the embedded broker (Tansu 0.6) never finishes a rebalance whose elected
leader left in the middle of it, which Apache Kafka recovers from.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.kafka_tools import (
    daemon_env,
    log_lines,
    start_daemon,
    stop_daemon,
    wait_committed,
)
from tests.reliability.conftest import reliability_env, run_to_end
from tests.reliability.state_tools import assert_same_run, chunked_scenario

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STREAMS, STEPS, PARTITIONS = 100, 400, 4
FEED_EVERY_S = 0.4     # a step of every stream: 250 events/s while the group changes
SETTLED_FOR_S = 2.0    # of steady scoring and commits between changes
SETTLE_TIMEOUT_S = 60.0


class Members:
    """The daemons of one group, each with its log; notices one that exits on its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: dict[str, subprocess.Popen] = {}
        self.started = 0

    def start(self) -> str:
        self.started += 1
        member = f"m{self.started}"
        self.running[member] = start_daemon(self.env, self.logs / f"{member}.log")
        return member

    def stop(self, member: str) -> None:
        assert stop_daemon(self.running.pop(member)) == 0, f"{member} did not stop cleanly"

    def kill(self, member: str) -> None:
        proc = self.running.pop(member)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def oldest(self) -> str:
        return next(iter(self.running))

    def youngest(self) -> str:
        return list(self.running)[-1]

    def settled_since(self, since: float) -> bool:
        """Every running member was assigned partitions after `since`, and their latest
        assignments split all the partitions between them."""
        owned: list[str] = []
        for member in self.running:
            assigned = [line for line in log_lines(self.logs / f"{member}.log")
                        if line.get("event") == "partitions_assigned"
                        and datetime.fromisoformat(line["timestamp"]).timestamp() > since]
            if not assigned:
                return False
            owned += assigned[-1]["partitions"]
        return len(owned) == len(set(owned)) == PARTITIONS

    def wait_settled(self, since: float) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not self.settled_since(since):
            self.check_alive()
            assert time.monotonic() < deadline, "the group did not settle"
            time.sleep(0.2)

    def check_alive(self) -> None:
        for member, proc in self.running.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{member}.log").read_text()[-3000:]
                raise AssertionError(f"{member} exited by itself with {proc.returncode}:\n{tail}")


def test_members_churning_under_a_continuous_feed_lose_nothing_and_never_crash(
        bootstrap_servers: str, tmp_path: Path) -> None:
    scenario, feed = chunked_scenario(bootstrap_servers, "churn", streams=STREAMS, steps=STEPS,
                                      seed=21, partitions=PARTITIONS)
    group = f"{scenario.topic}-g"
    env = daemon_env(bootstrap_servers, scenario.topic, f"{group}-alerts", group,
                     DETECTOR_KAFKA_CREATE_TOPICS="true", DETECTOR_KAFKA_MAX_POLL_RECORDS="250",
                     DETECTOR_SERVICE_COMMIT_INTERVAL_S="1")
    fed, changed = threading.Event(), threading.Event()

    def feeder() -> None:
        for step in range(STEPS):
            feed(1)
            if not changed.is_set():
                time.sleep(FEED_EVERY_S)
            elif step < STEPS - 1:  # the group is done changing: the rest at once
                feed(STEPS - 1 - step)
                break
        fed.set()

    members = Members(env, tmp_path)
    members.start()
    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    changes = [
        lambda: members.start(),                       # joins
        lambda: members.start(),
        lambda: members.stop(members.oldest()),        # the oldest leaves (SIGTERM)
        lambda: members.start(),
        lambda: members.kill(members.youngest()),      # a member dies (SIGKILL)
        lambda: members.start(),
        lambda: members.kill(members.oldest()),
        lambda: members.start(),
        lambda: members.stop(members.youngest()),
        lambda: members.start(),
        lambda: members.kill(members.oldest()),
        lambda: members.start(),
    ]
    changed_at = 0.0
    try:
        for change in changes:
            members.wait_settled(changed_at)
            deadline = time.monotonic() + SETTLED_FOR_S
            while time.monotonic() < deadline:
                members.check_alive()
                time.sleep(0.1)
            changed_at = time.time()
            change()
        fed_during_changes = fed.is_set()
        changed.set()
        thread.join(timeout=300)
        assert fed.is_set(), "the feed did not finish"
        deadline = time.monotonic() + 240
        while True:  # every offset committed, and nobody crashed meanwhile
            members.check_alive()
            try:
                wait_committed(bootstrap_servers, group, scenario.total, timeout_s=1)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "not every offset was committed in time"
        members.check_alive()
        for member in list(members.running):
            members.stop(member)
    finally:
        for proc in members.running.values():  # after a failure: leave nothing behind
            stop_daemon(proc)

    reference = f"{scenario.topic}-ref"
    run_to_end(scenario, reliability_env(scenario, reference), tmp_path / "reference.log")
    published, duplicates = assert_same_run(scenario, group, reference)
    assert not fed_during_changes, "the feed ended before the group stopped changing"
    refused = sum(line.get("event") == "commit_refused_group_changed"
                  for log in tmp_path.glob("m*.log") for line in log_lines(log))
    assert refused, "no commit overlapped a rebalance: the test proves nothing"
    print(f"\nchurn: {len(changes)} membership changes under a continuous feed of "
          f"{scenario.total} events; {refused} commits refused by a rebalance, survived; "
          f"{published} alerts published, {duplicates} duplicates removed by alert_id, "
          f"0 lost, state equal, no member crashed")


