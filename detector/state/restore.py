"""Restore: each partition's engine as of the group's committed offset, from the changelog.

The one way state is read back, for the daemon taking up an assignment, the throughput bench
and the reliability tests: read the partition's changelog (per key, the record with the highest
tag at or below the committed offset, nothing before a reset marker: changelog.py), decode
the records and load them into a fresh engine. A partition without a committed offset starts
afresh; one whose state cannot be decoded under the current settings starts afresh too, with
the reason given, rather than crash-looping the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.engine import Engine, EngineConfig
from detector.settings import KafkaSettings
from detector.state.changelog import PartitionState, read_state
from detector.state.codec import load_records


@dataclass
class Restored:
    engine: Engine
    records_read: int = 0
    unreadable: str | None = None  # why the saved state was not loaded, if it was not


def restore_partitions(k: KafkaSettings, config: EngineConfig,
                       committed: dict[int, int | None], *, timeout_s: float
                       ) -> dict[int, Restored]:
    """Per input partition, an engine as of its committed offset (`committed`)."""
    states = read_state(k, committed, timeout_s=timeout_s)
    return {p: load_state(config, states.get(p)) for p in committed}


def load_state(config: EngineConfig, state: PartitionState | None) -> Restored:
    """A fresh engine with `state` loaded into it (none: a fresh engine)."""
    engine = Engine(config)
    if state is None:
        return Restored(engine)
    if state.engine is None:
        return Restored(engine, state.records_read)
    try:
        load_records(engine, state.engine, state.streams.values())
    except (ValueError, KeyError, TypeError) as exc:
        return Restored(Engine(config), state.records_read, f"{type(exc).__name__}: {exc}")
    return Restored(engine, state.records_read)
