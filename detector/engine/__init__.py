"""The scoring engine: pure computation over batches of events; knows nothing of Kafka."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector.engine.types import (
    REJECTION_KINDS,
    BatchResult,
    EngineConfig,
    Event,
    Rejection,
    SharedState,
    StreamState,
)

if TYPE_CHECKING:
    from detector.engine.engine import Engine

__all__ = ["REJECTION_KINDS", "BatchResult", "Engine", "EngineConfig", "Event", "Rejection",
           "SharedState", "StreamState"]


def __getattr__(name: str) -> object:
    # torch comes with the Engine only: what reads events or results (records, the report)
    # does not pay seconds of import for it.
    if name == "Engine":
        from detector.engine.engine import Engine  # noqa: PLC0415

        return Engine
    raise AttributeError(f"module 'detector.engine' has no attribute {name!r}")
