"""The scoring engine: pure computation over batches of events; knows nothing of Kafka."""

from detector.engine.engine import Engine
from detector.engine.types import BatchResult, EngineConfig, Event, SharedState, StreamState

__all__ = ["BatchResult", "Engine", "EngineConfig", "Event", "SharedState", "StreamState"]
