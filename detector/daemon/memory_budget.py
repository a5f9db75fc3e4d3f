"""The memory a member needs for the streams it may hold, and the start-up check against it.

One formula, measured with `python -m detector.bench.memory` (README, Memory):

    needed = BASE + partitions x (PARTITION + max_streams x per_stream)
    per_stream = 2.5 x state row bytes + 3 KiB

The state row is the row of every arena array of a stream of 4 metrics (3,904 bytes with the
default model; it grows with DETECTOR_MODEL_HIDDEN_SIZE, _WINDOW and _SEASONAL_BUCKETS).
Admission (engine/admission.py) counts max_streams in such rows, so a wider stream takes the
room of several and the formula holds whatever the widths. A stream costs more than its row:
its id, slot and metric names in Python objects, the copy a checkpoint takes of every changed
row, and, when a partition is restored, its records read from the changelog beside the arena
being filled. The factors are the largest peaks measured, rounded up.

`partitions` is DETECTOR_STATE_MAX_PARTITIONS, or every partition of the input topic when it
is 0: the worst case is one member holding them all while the others are down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from detector.engine.admission import reference_row_bytes
from detector.engine.types import EngineConfig
from detector.errors import SettingsError
from detector.settings import Settings
from detector.units import memory_size_bytes

log = structlog.get_logger("detector.daemon.memory_budget")

MIB = 1024 * 1024
# Interpreter, torch, numpy, the Kafka clients and the HTTP server, ready with no stream: 320
# MiB measured, plus the producer's buffer and fetch buffers.
BASE_BYTES = 400 * MIB
# Per partition: model, optimiser, the arena's first slots, fetch and restore buffers.
PARTITION_BYTES = 16 * MIB
ROW_FACTOR = 2.5
STREAM_OVERHEAD_BYTES = 3_072
# cgroup v1 reports "no limit" as a number near 2^63.
UNLIMITED = 1 << 60


def arena_row_bytes(settings: Settings) -> int:
    """The row of every state array of a stream of REFERENCE_WIDTH metrics under these
    settings: DETECTOR_STATE_MAX_STREAMS counts such rows (engine/admission.py), so a wider
    stream takes the room of several."""
    return reference_row_bytes(EngineConfig.from_settings(settings))


def stream_budget_bytes(settings: Settings) -> int:
    """What one stream may cost at the peaks (checkpoint, restore), not only its row."""
    return int(ROW_FACTOR * arena_row_bytes(settings)) + STREAM_OVERHEAD_BYTES


def needed_bytes(settings: Settings, partitions: int) -> int:
    per_partition = PARTITION_BYTES + settings.state.max_streams * stream_budget_bytes(settings)
    return BASE_BYTES + partitions * per_partition


def streams_that_fit(settings: Settings, partitions: int, limit: int) -> int:
    """The largest DETECTOR_STATE_MAX_STREAMS that fits `limit` with `partitions`."""
    spare = (limit - BASE_BYTES) // max(partitions, 1) - PARTITION_BYTES
    return max(0, spare // stream_budget_bytes(settings))


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"),
                        proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """This process's memory limit from its cgroup (v2 or v1), the lowest along its path;
    None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                                   # v2 unified hierarchy
            limits += _along(root, path, "memory.max")
        elif "memory" in controllers.split(","):                # v1 memory controller
            limits += _along(root / "memory", path, "memory.limit_in_bytes")
    found = [v for v in limits if v < UNLIMITED]
    return min(found) if found else None


def _along(base: Path, path: str, name: str) -> list[int]:
    """The limit file in the cgroup's folder and each parent up to the mount (inside a
    container the cgroup namespace makes its own folder the root)."""
    values = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        file = base.joinpath(*parts[:depth], name)
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        values.append(UNLIMITED if text == "max" else int(text))
    return values


@dataclass(frozen=True)
class Budget:
    """The check's inputs and outcome, for the start-up log line."""

    limit: int | None
    limit_source: str
    partitions: int
    partitions_source: str
    needed: int

    @property
    def fits(self) -> bool:
        return self.limit is None or self.needed <= self.limit


def check_budget(settings: Settings, topic_partitions: int,
                 cgroup_limit: Callable[[], int | None] = cgroup_memory_limit) -> Budget:
    """Raise SettingsError, naming the variables, when the streams cannot fit the limit."""
    if settings.service.memory_limit:
        limit = memory_size_bytes(settings.service.memory_limit)
        source = "DETECTOR_SERVICE_MEMORY_LIMIT"
    else:
        limit, source = cgroup_limit(), "the cgroup memory limit"
    if settings.state.max_partitions:
        partitions, p_source = settings.state.max_partitions, "DETECTOR_STATE_MAX_PARTITIONS"
    else:
        partitions = topic_partitions
        p_source = (f"the {topic_partitions} partitions of DETECTOR_KAFKA_INPUT_TOPIC "
                    f"{settings.kafka.input_topic!r}")
    budget = Budget(limit, source, partitions, p_source, needed_bytes(settings, partitions))
    log.info("memory_budget", needed_mib=round(budget.needed / MIB),
             limit_mib=None if limit is None else round(limit / MIB), limit_from=source,
             partitions=partitions, max_streams=settings.state.max_streams)
    if not budget.fits:
        assert limit is not None
        fit = streams_that_fit(settings, partitions, limit)
        raise SettingsError(
            f"DETECTOR_STATE_MAX_STREAMS: {settings.state.max_streams} streams x "
            f"{p_source} need {budget.needed / MIB:,.0f} MiB, over {source} "
            f"({limit / MIB:,.0f} MiB); at most {fit} streams per partition fit (or raise "
            "the limit, or set DETECTOR_STATE_MAX_PARTITIONS; README, Memory)")
    return budget
