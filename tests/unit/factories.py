"""Seeded event factories for unit tests, and a folder's files for comparing written output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from detector.engine import Event

T0 = 1_772_409_600.0  # 2026-03-02 00:00 UTC, a Monday


def traffic(n_streams: int = 5, n_steps: int = 300, *, seed: int = 0, step_s: float = 300.0,
            spike: tuple[int, int, float] | None = None) -> list[Event]:
    """Step-major events of daily-cycled, noisy two-metric streams; spike=(stream, step, x)."""
    rng = np.random.default_rng(seed)
    base = 10 ** rng.uniform(4, 7, size=n_streams)
    events = []
    for t in range(n_steps):
        day = math.sin(2 * math.pi * (t * step_s % 86_400) / 86_400)
        for s in range(n_streams):
            v = base[s] * (1 + 0.4 * day) * math.exp(rng.normal(0, 0.05))
            if spike is not None and spike[0] == s and spike[1] == t:
                v *= spike[2]
            out = 0.3 * v * math.exp(rng.normal(0, 0.02))
            events.append(Event(f"host-{s}/eth0", T0 + t * step_s,
                                {"bytes_in": v, "bytes_out": out}))
    return events


def fleet(n_streams: int = 4, n_steps: int = 200, n_metrics: int = 2, *, seed: int = 0,
          step_s: float = 300.0, spike: tuple[int, int, float] | None = None,
          widths: tuple[int, ...] = ()) -> list[Event]:
    """Step-major events of streams with `n_metrics` correlated, daily-cycled metrics (the
    first scaled by `spike`=(stream, step, factor) at that step); with `widths`, stream s
    carries only the first widths[s % len(widths)] of them."""
    rng = np.random.default_rng(seed)
    base = 10 ** rng.uniform(2, 6, size=(n_streams, n_metrics))
    events = []
    for t in range(n_steps):
        day = math.sin(2 * math.pi * (t * step_s % 86_400) / 86_400)
        common = rng.normal(0, 0.05, size=n_streams)
        for s in range(n_streams):
            values = base[s] * (1 + 0.4 * day) * np.exp(common[s]
                                                        + rng.normal(0, 0.02, n_metrics))
            if spike is not None and spike[:2] == (s, t):
                values[0] *= spike[2]
            width = widths[s % len(widths)] if widths else n_metrics
            events.append(Event(f"host-{s}/if{width}", T0 + t * step_s,
                                {f"m{j}": float(v) for j, v in enumerate(values[:width])}))
    return events


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its relative path: two writes compare byte for byte."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}
