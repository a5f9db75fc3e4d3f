"""The Numenta Anomaly Benchmark: corpus access, scoring, and the streaming bench."""
