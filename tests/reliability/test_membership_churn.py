"""Membership churn under a continuous feed: members join, leave and are killed while others
commit every second, so commits overlap rebalances all the time.

Events arrive steadily for the whole test. Every few seconds the group changes: a member
joins, a member leaves with SIGTERM, a member is killed with SIGKILL, a static member is killed
and comes back under the same instance id. No member may exit unless it was killed or told to
stop (a commit refused by a rebalance must not crash it), and at the end the alerts, once
de-duplicated by id, and the state equal those of an uninterrupted run, with every offset
committed.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.kafka_tools import daemon_env, start_daemon, stop_daemon, wait_committed
from tests.reliability.conftest import reliability_env, run_to_end
from tests.reliability.state_tools import assert_same_run, chunked_scenario

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STREAMS, STEPS = 100, 240
FEED_STEPS, FEED_EVERY_S = 2, 0.5     # 400 events/s for about a minute
CHANGE_EVERY_S = 4.0


class Members:
    """The daemons of one group, each with its log; notices one that exits on its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: dict[str, subprocess.Popen] = {}
        self.started = 0

    def start(self, instance_id: str | None = None) -> str:
        self.started += 1
        member = instance_id or f"m{self.started}"
        env = dict(self.env)
        if instance_id:
            env["DETECTOR_KAFKA_GROUP_INSTANCE_ID"] = instance_id
        log = self.logs / f"{member}-{self.started}.log"
        self.running[member] = start_daemon(env, log)
        return member

    def stop(self, member: str) -> None:
        assert stop_daemon(self.running.pop(member)) == 0, f"{member} did not stop cleanly"

    def kill(self, member: str) -> None:
        proc = self.running.pop(member)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def check_alive(self) -> None:
        for member, proc in self.running.items():
            if proc.poll() is not None:
                logs = sorted(self.logs.glob(f"{member}-*.log"))
                tail = logs[-1].read_text()[-3000:] if logs else ""
                raise AssertionError(f"{member} exited by itself with {proc.returncode}:\n{tail}")


def test_members_churning_under_a_continuous_feed_lose_nothing_and_never_crash(
        bootstrap_servers: str, tmp_path: Path) -> None:
    scenario, feed = chunked_scenario(bootstrap_servers, "churn", streams=STREAMS, steps=STEPS,
                                      seed=21)
    group = f"{scenario.topic}-g"
    env = daemon_env(bootstrap_servers, scenario.topic, f"{group}-alerts", group,
                     DETECTOR_KAFKA_CREATE_TOPICS="true", DETECTOR_KAFKA_MAX_POLL_RECORDS="250",
                     DETECTOR_SERVICE_COMMIT_INTERVAL_S="1")
    fed = threading.Event()

    def feeder() -> None:
        for _ in range(STEPS // FEED_STEPS):
            feed(FEED_STEPS)
            time.sleep(FEED_EVERY_S)
        fed.set()

    members = Members(env, tmp_path)
    members.start()
    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    changes = [
        lambda: members.start(),                       # joins
        lambda: members.start("churn-static"),         # a static member joins
        lambda: members.stop(_oldest(members)),        # the oldest leaves (SIGTERM)
        lambda: members.start(),
        lambda: members.kill("churn-static"),          # the static member dies ...
        lambda: members.start("churn-static"),         # ... and comes back under its id
        lambda: members.kill(_youngest(members)),      # a member dies (SIGKILL)
        lambda: members.start(),
        lambda: members.stop(_youngest(members)),
        lambda: members.start(),
        lambda: members.kill(_oldest(members)),
        lambda: members.start(),
    ]
    try:
        for change in changes:
            deadline = time.monotonic() + CHANGE_EVERY_S
            while time.monotonic() < deadline:
                members.check_alive()
                time.sleep(0.1)
            change()
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
    print(f"\nchurn: {len(changes)} membership changes under a continuous feed of "
          f"{scenario.total} events; {published} alerts published, {duplicates} duplicates "
          f"removed by alert_id, 0 lost, state equal, no member crashed")


def _oldest(members: Members) -> str:
    return next(m for m in members.running if m != "churn-static")


def _youngest(members: Members) -> str:
    return [m for m in members.running if m != "churn-static"][-1]
