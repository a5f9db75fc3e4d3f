"""The scoring engine: pure computation over batches of events; knows nothing of Kafka."""

from detector.engine.engine import Engine
from detector.engine.types import (
    REJECTION_KINDS,
    BatchResult,
    EngineConfig,
    Event,
    Rejection,
    SharedState,
    StreamState,
)

__all__ = ["REJECTION_KINDS", "BatchResult", "Engine", "EngineConfig", "Event", "Rejection",
           "SharedState", "StreamState"]
