"""Versioned codecs for what outlives a process: model files (and, later, stream state)."""
