"""Helpers of the reliability tests: a seeded input topic, and a group's state in the changelog."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.engine import EngineConfig
from detector.settings import KafkaSettings
from detector.sim.produce import encode_event
from detector.sim.traffic import TrafficGenerator, TrafficPlan, plan_traffic
from detector.state.restore import restore_partitions
from tests.integration.kafka_tools import committed, create_topics, produce, read_json


@dataclass(frozen=True)
class Scenario:
    bootstrap: str
    topic: str
    plan: TrafficPlan
    total: int

    def plan_incident_streams(self) -> set[str]:
        return {i.stream for i in self.plan.incidents}


def seed_scenario(bootstrap: str, name: str, *, streams: int, steps: int, seed: int,
                  partitions: int = 4) -> Scenario:
    """A topic with all `steps` steps of `streams` streams already in it."""
    scenario, feed = chunked_scenario(bootstrap, name, streams=streams, steps=steps, seed=seed,
                                      partitions=partitions)
    feed(steps)
    return scenario


def chunked_scenario(bootstrap: str, name: str, *, streams: int, steps: int, seed: int,
                     partitions: int = 4) -> tuple[Scenario, Callable[[int], None]]:
    """An empty topic and `feed(n)`, which produces the next n steps of its traffic."""
    topic = f"{name}-{time.time_ns()}"
    create_topics(bootstrap, topic, partitions=partitions)
    plan = plan_traffic(streams, seed=seed, n_steps=steps, n_incidents=4,
                        incident_kinds=("spike", "outage", "level_shift"),
                        earliest_index=steps // 2, latest_index=steps - 20)
    generator = TrafficGenerator(plan, seed=seed)

    def feed(n: int) -> None:
        assert generator.step_index + n <= steps, "the scenario has no more steps"
        events = [e for _ in range(n) for e in generator.step()]
        produce(bootstrap, topic, [(e["stream"].encode(), encode_event(e)) for e in events])

    return Scenario(bootstrap, topic, plan, streams * steps), feed


DAEMON_DEFAULTS = EngineConfig()


def changelog_state(bootstrap: str, group: str, config: EngineConfig = DAEMON_DEFAULTS
                    ) -> dict[int, tuple[dict, dict]]:
    """Per input partition: (shared arrays, {stream: row}) as of the group's commit, read back
    the way the daemon restores it."""
    k = KafkaSettings(bootstrap_servers=bootstrap, group_id=group)
    out = {}
    for partition, restored in restore_partitions(k, config, committed(bootstrap, group),
                                                  timeout_s=60).items():
        engine = restored.engine
        assert restored.unreadable is None, restored.unreadable
        assert engine.events_processed, f"no engine state for partition {partition}"
        shared = engine.shared_state()
        rows = {stream: engine.stream_state(stream).row for stream in engine.lane_of}
        meta = {f"meta/{k}": v for k, v in shared.meta.items() if k != "lanes"}
        for width, lane in shared.meta["lanes"].items():  # type: ignore[union-attr]
            meta.update({f"meta/{width}/{k}": v for k, v in lane.items()
                         if k != "last_train_loss"})
        out[partition] = ({**shared.arrays, **meta}, rows)
    return out


def assert_same_state(got: dict, want: dict, *, rtol: float = 1e-4, atol: float = 1e-5
                      ) -> None:
    """Same partitions, streams, weights and counters; floats equal to a tolerance (a batch
    cut elsewhere groups streams differently in one matrix product)."""
    assert got.keys() == want.keys()
    for partition, (shared, rows) in want.items():
        got_shared, got_rows = got[partition]
        assert got_rows.keys() == rows.keys(), f"partition {partition}: other streams"
        assert got_shared.keys() == shared.keys(), f"partition {partition}: other arrays"
        for name, value in shared.items():
            _close(got_shared[name], value, f"partition {partition} {name}", rtol, atol)
        for stream, row in rows.items():
            for name, value in row.items():
                _close(got_rows[stream][name], value, f"{stream} {name}", rtol, atol)


def _close(got: object, want: object, what: str, rtol: float, atol: float) -> None:
    if isinstance(want, str | int | float) and not isinstance(want, bool | float):
        assert got == want, what
        return
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64),
                               np.asarray(want, dtype=np.float64), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=what)


def assert_same_run(scenario: Scenario, group: str, reference: str) -> tuple[int, int]:
    """`group` published every alert of the uninterrupted `reference` run, nothing else once
    de-duplicated by alert_id, and ended with the same state. Returns (published,
    duplicates)."""
    expected = read_json(scenario.bootstrap, f"{reference}-alerts")
    published = read_json(scenario.bootstrap, f"{group}-alerts")
    assert scenario.plan_incident_streams() <= {a["stream"] for a in expected}
    assert {a["alert_id"] for a in published} == {a["alert_id"] for a in expected}
    first: dict[str, dict] = {}
    for alert in published:
        first.setdefault(alert["alert_id"], alert)
    for alert in expected:  # a re-published alert says what the first one said
        assert abs(first[alert["alert_id"]]["score"] - alert["score"]) <= 1e-6
    assert_same_state(changelog_state(scenario.bootstrap, group),
                      changelog_state(scenario.bootstrap, reference))
    return len(published), len(published) - len(first)
