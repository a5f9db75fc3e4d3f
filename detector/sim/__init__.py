"""Simulated telemetry: the traffic generator and its incidents, the demo, an embedded broker."""
