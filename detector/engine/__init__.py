"""The scoring engine: pure computation over batches of events; knows nothing of Kafka."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector.engine.types import BatchResult, EngineConfig, Event, SharedState, StreamState

if TYPE_CHECKING:
    from detector.engine.engine import Engine

__all__ = ["BatchResult", "Engine", "EngineConfig", "Event", "SharedState", "StreamState"]


def __getattr__(name: str) -> object:
    # torch comes with the Engine only: what reads events or results (records, the report)
    # does not pay seconds of import for it.
    if name == "Engine":
        from detector.engine.engine import Engine  # noqa: PLC0415

        return Engine
    raise AttributeError(f"module 'detector.engine' has no attribute {name!r}")
