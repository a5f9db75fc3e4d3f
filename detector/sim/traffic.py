"""Synthetic network telemetry with injected, recorded incidents.

Each stream (a host interface, link or load balancer) carries four correlated metrics with a
daily and a weekly cycle and multiplicative noise. Incidents are placed by a plan, so tests and
the demo know which alerts to expect: a volumetric spike, an outage, a level shift, and a change
visible only in the relation between metrics (bytes_out rising while bytes_in stays normal).
Slow ones too, the kind an online model may absorb: a bytes_out ramp over hours, a daily pattern
moved by hours, a burst of noise, and a flood of small packets (packets_in up, bytes per packet
down).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

METRICS: tuple[str, ...] = ("bytes_in", "bytes_out", "packets_in", "flows")
INCIDENT_KINDS: tuple[str, ...] = ("spike", "outage", "level_shift", "ratio", "ramp",
                                   "phase_shift", "noise_burst", "small_packets")
# Changes that last to the end of the series: the new level, the ramp's top, the moved cycle.
PERMANENT_KINDS: tuple[str, ...] = ("level_shift", "ramp", "phase_shift")
# Steps an incident lasts unless plan_traffic is told otherwise; a spike without an override
# lasts 1-3 steps (drawn per incident) and a permanent one lasts to the end of the series.
DEFAULT_DURATION: dict[str, int] = {"outage": 6, "ratio": 12, "noise_burst": 24,
                                    "small_packets": 12}
SPIKE_STEPS = (1, 3)
RAMP_STEPS = 72  # a ramp climbs for 72 steps (6 hours at 5-minute steps), then holds its top
SMALL_PACKET_BYTES = 64.0
# The last index of an endless series: a level shift there never ends, but its end stays a
# finite number so that Incident.to_dict() remains valid JSON.
OPEN_END_INDEX = 2**31 - 1
SECONDS_PER_DAY = 86_400.0

# (host prefix, its interfaces, share of hosts); services sit behind one load-balancer interface.
_HOST_KINDS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("edge", ("eth0", "eth1", "eth2", "eth3"), 0.3),
    ("core", ("eth0", "eth1", "eth2", "eth3"), 0.1),
    ("db", ("bond0", "eth0"), 0.15),
    ("svc-api", ("lb",), 0.15), ("svc-web", ("lb",), 0.1), ("svc-auth", ("lb",), 0.1),
    ("svc-search", ("lb",), 0.1),
)
_HOST_SHARES = np.array([share for *_, share in _HOST_KINDS])


@dataclass(frozen=True)
class Incident:
    stream: str
    kind: str          # one of INCIDENT_KINDS
    start_index: int   # step number of the first affected event of the stream (0-based)
    end_index: int     # step number of the last affected event (inclusive)
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
    """Host after host, each with one or more interfaces: unique by construction, any n."""
    hosts_so_far = [0] * len(_HOST_KINDS)
    names: list[str] = []
    while len(names) < n:
        kind = int(rng.choice(len(_HOST_KINDS), p=_HOST_SHARES))
        prefix, interfaces, _ = _HOST_KINDS[kind]
        hosts_so_far[kind] += 1
        host = hosts_so_far[kind]
        # Zero-padded numbers for routers and databases, plain replica numbers for services.
        host_name = f"{prefix}-{host}" if prefix.startswith("svc-") else f"{prefix}-{host:02d}"
        for interface in interfaces[: int(rng.integers(1, len(interfaces) + 1))]:
            names.append(f"{host_name}/{interface}")
    return tuple(names[:n])


def plan_traffic(n_streams: int, *, seed: int, n_steps: int | None = None,
                 incidents: Sequence[tuple[str, int]] | Mapping[str, int] = (),
                 incident_kinds: Sequence[str] = ("spike", "outage", "level_shift"),
                 n_incidents: int = 0, earliest_index: int = 0, latest_index: int | None = None,
                 start_ts: float = 1772409600.0, step_seconds: float = 300.0,
                 durations: Mapping[str, int] | None = None) -> TrafficPlan:
    """Stream ids and incident placement, deterministic from the seed.

    `incidents` are explicit (kind, start_index) pairs; `n_incidents` more are drawn, cycling
    through `incident_kinds`, starting uniformly in [earliest_index, latest_index]. Every
    incident gets a stream of its own. `durations` overrides the steps a kind lasts.
    """
    if n_streams < 1:
        raise ValueError("n_streams must be at least 1")
    if n_steps is not None and n_steps < 1:
        raise ValueError("n_steps must be at least 1 (or None for an endless series)")
    if not (step_seconds > 0 and math.isfinite(step_seconds) and math.isfinite(start_ts)):
        raise ValueError("step_seconds must be positive and finite, start_ts finite")
    explicit = list(incidents.items()) if isinstance(incidents, Mapping) else list(incidents)
    lasting = {**DEFAULT_DURATION, **(durations or {})}
    for kind in [k for k, _ in explicit] + list(incident_kinds) + list(lasting):
        if kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {kind!r}; known: {INCIDENT_KINDS}")
    for kind in PERMANENT_KINDS:
        if kind in lasting:
            raise ValueError(f"a {kind} always lasts to the end of the series")
    if any(steps < 1 for steps in lasting.values()):
        raise ValueError("incident durations must be at least 1 step")
    if n_incidents < 0:
        raise ValueError("n_incidents must not be negative")
    if n_incidents and not incident_kinds:
        raise ValueError("n_incidents needs at least one incident kind")
    if n_incidents + len(explicit) > n_streams:
        raise ValueError(f"{n_incidents + len(explicit)} incidents need as many streams, "
                         f"only {n_streams} planned")
    last = n_steps - 1 if n_steps is not None else OPEN_END_INDEX
    for kind, start in explicit:
        if not 0 <= start <= last:
            raise ValueError(f"{kind} at step {start} is outside the series (0..{last})")
    if n_incidents:
        if latest_index is None:
            if n_steps is None:
                raise ValueError("latest_index is required for an endless series (n_steps None)")
            latest_index = n_steps - 20
        if not 0 <= earliest_index <= latest_index <= last:
            raise ValueError(f"no room for incidents between steps {earliest_index} and "
                             f"{latest_index} of a series ending at {last}")

    rng = np.random.default_rng(seed)
    streams = _stream_names(n_streams, rng)
    chosen = rng.permutation(n_streams)[: n_incidents + len(explicit)]
    wanted = explicit + [(incident_kinds[i % len(incident_kinds)],
                          int(rng.integers(earliest_index, latest_index + 1)))
                         for i in range(n_incidents)]
    placed = []
    for slot, (kind, start) in zip(chosen, wanted, strict=True):
        if kind in PERMANENT_KINDS:
            end = last
        else:
            steps = lasting.get(kind) or int(rng.integers(SPIKE_STEPS[0], SPIKE_STEPS[1] + 1))
            end = min(start + steps - 1, last)
        placed.append(Incident(streams[int(slot)], kind, int(start), int(end),
                               start_ts + start * step_seconds, start_ts + end * step_seconds))
    placed.sort(key=lambda i: (i.start_index, i.stream))
    return TrafficPlan(streams, tuple(placed), float(start_ts), float(step_seconds))


class TrafficGenerator:
    """Steps every stream of a plan forward together, vectorised across streams."""

    def __init__(self, plan: TrafficPlan, *, seed: int) -> None:
        self.plan = plan
        n = len(plan.streams)
        # One generator for all streams, drawn in plan order: same plan and seed, same events.
        self._rng = r = np.random.default_rng([seed, 0x7E1E])
        self._base = 10 ** r.uniform(5.0, 7.7, n)               # bytes per interval
        self._out_ratio = r.uniform(0.15, 0.6, n)                # bytes_out / bytes_in
        self._packet_size = r.uniform(600.0, 1_200.0, n)         # bytes per packet
        self._packets_per_flow = r.uniform(20.0, 60.0, n)
        self._daily_amp = r.uniform(0.3, 0.6, n)
        self._peak_hour = r.uniform(13.0, 17.0, n)               # UTC, afternoon
        self._noise = r.uniform(0.05, 0.08, n)                   # log-normal sigma
        # A level shift goes up or down with equal odds, by the same range of factors.
        self._shift = np.where(r.random(n) < 0.5, r.uniform(2.5, 4.0, n),
                               1.0 / r.uniform(2.5, 4.0, n))
        self._spike = r.uniform(5.0, 12.0, n)
        self._ratio_jump = r.uniform(3.0, 5.0, n)
        # The slow kinds draw from a generator of their own: the streams and steps of plans
        # without them stay exactly as they were.
        slow = np.random.default_rng([seed, 0x510E])
        self._ramp_top = slow.uniform(2.0, 3.5, n)                # bytes_out factor at its top
        self._phase = np.where(slow.random(n) < 0.5, 1.0, -1.0) * slow.uniform(4.0, 8.0, n)
        self._burst = slow.uniform(5.0, 8.0, n)                   # noise sigma factor
        self._flood = slow.uniform(4.0, 8.0, n)                   # packets_in factor
        index = {s: i for i, s in enumerate(plan.streams)}
        self._incidents = [(index[i.stream], i) for i in plan.incidents]
        self._step = 0

    @property
    def step_index(self) -> int:
        """The step number the next call to step() produces."""
        return self._step

    def _cycle(self, ts: float, peak_hour: np.ndarray) -> np.ndarray:
        hour = (ts % SECONDS_PER_DAY) / 3_600.0
        daily = 1.0 + self._daily_amp * np.cos(2 * math.pi * (hour - peak_hour) / 24.0)
        weekday = int((ts // SECONDS_PER_DAY + 3) % 7)  # the epoch was a Thursday; 0 = Monday
        return daily * (0.8 if weekday >= 5 else 1.0)

    def step(self) -> list[dict]:
        """The next step's events, one per stream, in plan.streams order:
        {"stream": id, "ts": epoch_seconds_float, "metrics": {name: float, ...}}"""
        t = self._step
        ts = self.plan.start_ts + t * self.plan.step_seconds
        r = self._rng
        n = len(self.plan.streams)
        active = [(i, incident) for i, incident in self._incidents
                  if incident.start_index <= t <= incident.end_index]
        peak_hour = self._peak_hour.copy()
        for i, incident in active:
            if incident.kind == "phase_shift":
                peak_hour[i] += self._phase[i]
        noise = r.normal(0.0, self._noise)
        bytes_in = self._base * self._cycle(ts, peak_hour) * np.exp(noise)
        bytes_out = bytes_in * self._out_ratio * np.exp(r.normal(0.0, 0.03, n))
        for i, incident in active:
            if incident.kind == "spike":
                bytes_in[i] *= self._spike[i]
                bytes_out[i] *= 1.0 + 0.2 * self._spike[i]  # replies rise, far less than input
            elif incident.kind == "outage":
                bytes_in[i] = bytes_out[i] = 0.0
            elif incident.kind == "level_shift":
                bytes_in[i] *= self._shift[i]
                bytes_out[i] *= self._shift[i]
            elif incident.kind == "ratio":  # only the relation between metrics changes
                bytes_out[i] *= self._ratio_jump[i]
            elif incident.kind == "ramp":
                climbed = min(1.0, (t - incident.start_index + 1) / RAMP_STEPS)
                bytes_out[i] *= 1.0 + (self._ramp_top[i] - 1.0) * climbed
            elif incident.kind == "noise_burst":  # the same draw, spread wider
                wider = math.exp((self._burst[i] - 1.0) * noise[i])
                bytes_in[i] *= wider
                bytes_out[i] *= wider
        # Packets and flows derive from bytes_in, so every bytes_in incident carries over.
        packets = np.round(bytes_in / self._packet_size * np.exp(r.normal(0.0, 0.03, n)))
        for i, incident in active:
            if incident.kind == "small_packets":  # e.g. a SYN flood: many packets, few bytes
                extra = np.round(packets[i] * (self._flood[i] - 1.0))
                packets[i] += extra
                bytes_in[i] += extra * SMALL_PACKET_BYTES
        # Poisson-like noise via the square-root normal approximation (sqrt of a Poisson count is
        # about normal with sd 1/2): never negative, and a busy stream does not drop to 0 flows,
        # which clipping a plain normal would do. Unlike rng.poisson it takes the same number of
        # random numbers whatever the rate, so an incident never shifts the noise of the steps
        # and streams after it (a plan with and without an incident differs only inside it).
        root = np.sqrt(np.maximum(packets / self._packets_per_flow - 0.25, 0.0))
        # Every flow carries at least one packet: an outage (no packets) has no flows either.
        flows = np.minimum(np.round((root + 0.5 * r.normal(0.0, 1.0, n)) ** 2), packets)
        self._step += 1
        return [{"stream": s, "ts": ts,
                 "metrics": {"bytes_in": bi, "bytes_out": bo, "packets_in": p, "flows": f}}
                for s, bi, bo, p, f in zip(self.plan.streams, bytes_in.tolist(),
                                           bytes_out.tolist(), packets.tolist(), flows.tolist(),
                                           strict=True)]

    def events(self, n_steps: int) -> Iterator[dict]:
        """n_steps × n_streams events, step after step."""
        for _ in range(n_steps):
            yield from self.step()
