"""Offline tools on recorded data: CSV replay, training and evaluation, the report."""
