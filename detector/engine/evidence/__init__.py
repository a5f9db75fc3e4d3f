"""Detectors that add evidence beside the model's surprise: pure functions over arena rows."""
