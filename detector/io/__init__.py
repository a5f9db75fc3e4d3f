"""Adapters between the engine and the outside world (Kafka, CSV)."""
