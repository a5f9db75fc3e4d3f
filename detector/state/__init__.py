"""Partition state: the snapshot codec, the checkpoint steps, the changelog topic and restore."""
