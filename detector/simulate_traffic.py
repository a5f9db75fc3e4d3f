"""Synthetic network telemetry with injected, recorded incidents.

Each stream (a host interface, link or service) carries four correlated metrics with a daily
and a weekly cycle and multiplicative noise. Incidents are placed by a plan, so tests and the
demo know which alerts to expect: a volumetric spike, an outage, a level shift, and a change
visible only in the relation between metrics (bytes_out rising while bytes_in stays normal).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

METRICS: tuple[str, ...] = ("bytes_in", "bytes_out", "packets_in", "flows")
INCIDENT_KINDS: tuple[str, ...] = ("spike", "outage", "level_shift", "ratio")
DEFAULT_DURATION = {"spike": 2, "outage": 6, "ratio": 12}
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Incident:
    stream: str
    kind: str
    start_index: int
    end_index: int  # inclusive
    start_ts: float
    end_ts: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrafficPlan:
    streams: tuple[str, ...]
    incidents: tuple[Incident, ...]
    start_ts: float
    step_seconds: float

    def incidents_for(self, stream: str) -> tuple[Incident, ...]:
        return tuple(i for i in self.incidents if i.stream == stream)

    def clean_streams(self) -> tuple[str, ...]:
        hit = {i.stream for i in self.incidents}
        return tuple(s for s in self.streams if s not in hit)


def _stream_names(n: int, rng: np.random.Generator) -> tuple[str, ...]:
    roles = ("edge", "core", "svc-api", "db", "lb", "cache")
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        role = roles[int(rng.integers(len(roles)))]
        name = f"{role}-{int(rng.integers(1, 100)):02d}/eth{int(rng.integers(0, 4))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


def plan_traffic(n_streams: int, *, seed: int, n_steps: int | None = None,
                 incidents: Sequence[tuple[str, int]] | Mapping[str, int] = (),
                 incident_kinds: Sequence[str] = ("spike", "outage", "level_shift"),
                 n_incidents: int = 0, earliest_index: int = 0, latest_index: int | None = None,
                 start_ts: float = 1772409600.0, step_seconds: float = 300.0) -> TrafficPlan:
    """Stream ids and incident placement, deterministic from the seed."""
    if n_streams < 1:
        raise ValueError("n_streams must be at least 1")
    if step_seconds <= 0:
        raise ValueError("step_seconds must be positive")
    explicit = list(incidents.items()) if isinstance(incidents, Mapping) else list(incidents)
    for kind in [k for k, _ in explicit] + list(incident_kinds):
        if kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {kind!r}; known: {INCIDENT_KINDS}")
    if n_incidents and not incident_kinds:
        raise ValueError("n_incidents needs at least one incident kind")
    if n_incidents < 0 or n_incidents + len(explicit) > n_streams:
        raise ValueError("each incident needs a stream of its own: too many incidents")
    if latest_index is None:
        if n_steps is None and n_incidents:
            raise ValueError("latest_index is required when n_steps is not given")
        latest_index = (n_steps - 20) if n_steps is not None else earliest_index
    if n_incidents and not 0 <= earliest_index <= latest_index:
        raise ValueError(f"no room for incidents between steps {earliest_index} and "
                         f"{latest_index}")
    rng = np.random.default_rng(seed)
    streams = _stream_names(n_streams, rng)
    chosen = rng.permutation(n_streams)[: n_incidents + len(explicit)]
    wanted = explicit + [(incident_kinds[i % len(incident_kinds)],
                          int(rng.integers(earliest_index, latest_index + 1)))
                         for i in range(n_incidents)]
    last = (n_steps - 1) if n_steps is not None else None
    placed = []
    for slot, (kind, start) in zip(chosen, wanted, strict=True):
        if kind == "level_shift":
            end = last if last is not None else start + 10**9
        else:
            end = start + DEFAULT_DURATION[kind] - 1
            if last is not None:
                end = min(end, last)
        placed.append(Incident(streams[int(slot)], kind, start, end,
                               start_ts + start * step_seconds, start_ts + end * step_seconds))
    placed.sort(key=lambda i: (i.start_index, i.stream))
    return TrafficPlan(streams, tuple(placed), start_ts, step_seconds)


class TrafficGenerator:
    """Steps every stream of a plan forward together, vectorised across streams."""

    def __init__(self, plan: TrafficPlan, *, seed: int) -> None:
        self.plan = plan
        n = len(plan.streams)
        self._rng = np.random.default_rng([seed, 0x7E1E])
        r = self._rng
        self._base = 10 ** r.uniform(5.0, 7.7, n)               # bytes per interval
        self._out_ratio = r.uniform(0.15, 0.6, n)                # bytes_out / bytes_in
        self._packet_size = r.uniform(600.0, 1_200.0, n)         # bytes per packet
        self._packets_per_flow = r.uniform(20.0, 60.0, n)
        self._daily_amp = r.uniform(0.3, 0.6, n)
        self._peak_hour = r.uniform(13.0, 17.0, n)
        self._noise = r.uniform(0.05, 0.08, n)
        self._shift = np.where(r.random(n) < 0.5, r.uniform(2.5, 4.0, n),
                               1.0 / r.uniform(2.5, 4.0, n))
        self._spike = r.uniform(5.0, 12.0, n)
        self._ratio_jump = r.uniform(3.0, 5.0, n)
        self._index = {s: i for i, s in enumerate(plan.streams)}
        self._step = 0

    @property
    def step_index(self) -> int:
        return self._step

    def _cycle(self, ts: float) -> np.ndarray:
        hour = (ts % SECONDS_PER_DAY) / 3_600.0
        daily = 1.0 + self._daily_amp * np.cos(2 * math.pi * (hour - self._peak_hour) / 24.0)
        weekday = int((ts // SECONDS_PER_DAY + 3) % 7)  # 0 = Monday
        return daily * (0.8 if weekday >= 5 else 1.0)

    def step(self) -> list[dict]:
        """The next step's events, one per stream, in plan order."""
        t = self._step
        ts = self.plan.start_ts + t * self.plan.step_seconds
        r = self._rng
        n = len(self.plan.streams)
        bytes_in = self._base * self._cycle(ts) * np.exp(r.normal(0.0, self._noise))
        bytes_out = bytes_in * self._out_ratio * np.exp(r.normal(0.0, 0.03, n))
        for incident in self.plan.incidents:
            if not incident.start_index <= t <= incident.end_index:
                continue
            i = self._index[incident.stream]
            if incident.kind == "spike":
                bytes_in[i] *= self._spike[i]
                bytes_out[i] *= 1.0 + 0.2 * self._spike[i]
            elif incident.kind == "outage":
                bytes_in[i] = bytes_out[i] = 0.0
            elif incident.kind == "level_shift":
                bytes_in[i] *= self._shift[i]
                bytes_out[i] *= self._shift[i]
            else:  # ratio: only the relation between metrics changes
                bytes_out[i] *= self._ratio_jump[i]
        packets = np.round(bytes_in / self._packet_size * np.exp(r.normal(0.0, 0.03, n)))
        flows = r.poisson(np.maximum(packets / self._packets_per_flow, 0.0)).astype(float)
        self._step += 1
        return [{"stream": s, "ts": ts,
                 "metrics": {"bytes_in": float(bytes_in[i]), "bytes_out": float(bytes_out[i]),
                             "packets_in": float(packets[i]), "flows": float(flows[i])}}
                for i, s in enumerate(self.plan.streams)]

    def events(self, n_steps: int) -> Iterator[dict]:
        for _ in range(n_steps):
            yield from self.step()
