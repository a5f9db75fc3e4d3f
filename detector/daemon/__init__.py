"""The daemon: Kafka in and out, partition ownership, the loop, telemetry."""
