"""Simulated network traffic written as a labelled corpus in NAB's layout, for `bench corpus`.

Every incident kind the simulator knows is injected on `per_kind` streams of its own, and
`clean` streams carry none; each stream is one file, `data/<kind>/<stream>.csv` (`clean/` for
the streams without an incident). The first `history_days` of every file are unlabelled
history (probation.json) and incidents start after it.

Label rule: one window per incident, from one hour before its first affected step to two hours
after it is fully developed: its last step for a passing incident (spike, outage, ratio, noise
burst, small packets), its first for a level shift, the top of a ramp (RAMP_STEPS after its
start), six hours after a daily pattern moved. Incidents are placed so that the whole window
fits in the file. root_cause.json names the metrics of the incidents that touch some metrics
only: bytes_out for a ratio change or a ramp, packets_in and flows for a small-packet flood;
its rows run from the incident's first step to the window's end.

The same arguments and seed write byte-identical files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from detector.sim.traffic import (
    DEFAULT_DURATION,
    INCIDENT_KINDS,
    METRICS,
    PERMANENT_KINDS,
    RAMP_STEPS,
    SPIKE_STEPS,
    Incident,
    TrafficGenerator,
    TrafficPlan,
    plan_traffic,
)

CLEAN = "clean"
LEAD_SECONDS = 3_600.0
LAG_SECONDS = 7_200.0
PHASE_SETTLE_SECONDS = 6 * 3_600.0
ROOT_CAUSE_METRICS = {"ratio": ("bytes_out",), "ramp": ("bytes_out",),
                      "small_packets": ("packets_in", "flows")}
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class TrafficCorpusSpec:
    """What to simulate: streams per incident kind, clean streams, length, step, seed."""

    per_kind: int = 3
    clean: int = 8
    days: float = 7.0
    history_days: float = 2.0
    step_seconds: float = 300.0
    seed: int = 7
    kinds: tuple[str, ...] = INCIDENT_KINDS

    @property
    def steps(self) -> int:
        return round(self.days * 86_400 / self.step_seconds)

    @property
    def history(self) -> int:
        return round(self.history_days * 86_400 / self.step_seconds)

    def to_steps(self, seconds: float) -> int:
        return round(seconds / self.step_seconds)


@dataclass(frozen=True)
class LabelledIncident:
    """An injected incident with the file it is in and its label window (inclusive rows)."""

    incident: Incident
    rel: str
    window: tuple[int, int]


def developed_after(kind: str, spec: TrafficCorpusSpec) -> int:
    """Steps from an incident's first step to where it is fully developed, at most."""
    if kind == "level_shift":
        return 0
    if kind == "ramp":
        return RAMP_STEPS - 1
    if kind == "phase_shift":
        return spec.to_steps(PHASE_SETTLE_SECONDS)
    return (SPIKE_STEPS[1] if kind == "spike" else DEFAULT_DURATION[kind]) - 1


def plan_corpus(spec: TrafficCorpusSpec) -> tuple[TrafficPlan, list[LabelledIncident]]:
    """The simulator's plan for the corpus and every incident's file and label window."""
    unknown = sorted(set(spec.kinds) - set(INCIDENT_KINDS))
    if unknown or not spec.kinds:
        raise ValueError(f"incident kinds {unknown or '(none)'}: choose from {INCIDENT_KINDS}")
    if spec.per_kind < 0 or spec.clean < 0 or spec.per_kind * len(spec.kinds) + spec.clean < 1:
        raise ValueError("per_kind and clean must not be negative, and make at least one stream")
    lead, lag = spec.to_steps(LEAD_SECONDS), spec.to_steps(LAG_SECONDS)
    earliest = spec.history + lead
    latest = spec.steps - 1 - lag - max(developed_after(k, spec) for k in spec.kinds)
    if latest < earliest:
        raise ValueError(f"{spec.days} days leave no room for incidents after "
                         f"{spec.history_days} days of history")
    incidents = spec.per_kind * len(spec.kinds)
    plan = plan_traffic(incidents + spec.clean, seed=spec.seed, n_steps=spec.steps,
                        incident_kinds=spec.kinds, n_incidents=incidents,
                        earliest_index=earliest, latest_index=latest,
                        step_seconds=spec.step_seconds)
    labelled = []
    for incident in plan.incidents:
        settled = incident.start_index + developed_after(incident.kind, spec)
        if incident.kind not in PERMANENT_KINDS:
            settled = incident.end_index
        labelled.append(LabelledIncident(incident, file_name(incident.kind, incident.stream),
                                         (incident.start_index - lead, settled + lag)))
    return plan, labelled


def file_name(kind: str, stream: str) -> str:
    """The file of a stream under data/: its incident kind's folder, "/" in its id as "_"."""
    return f"{kind}/{stream.replace('/', '_')}.csv"


def write_traffic_corpus(out: Path, spec: TrafficCorpusSpec) -> list[LabelledIncident]:
    """Simulate and write the corpus under `out` (data/, labels/, probation.json,
    root_cause.json, incidents.json); returns the labelled incidents."""
    plan, labelled = plan_corpus(spec)
    by_stream = {li.incident.stream: li for li in labelled}
    rels = {s: by_stream[s].rel if s in by_stream else file_name(CLEAN, s)
            for s in plan.streams}
    values = _simulate(plan, spec)
    stamps = [datetime.fromtimestamp(plan.start_ts + t * plan.step_seconds, tz=UTC)
              .strftime(TIMESTAMP_FORMAT) for t in range(spec.steps)]
    out = Path(out)
    for i, stream in enumerate(plan.streams):
        path = out / "data" / rels[stream]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("timestamp", *METRICS))
            for t, stamp in enumerate(stamps):
                writer.writerow((stamp, *(f"{v:.10g}" for v in values[t, i])))
    windows = {rels[s]: ([[stamps[by_stream[s].window[0]], stamps[by_stream[s].window[1]]]]
                         if s in by_stream else []) for s in plan.streams}
    causes = {li.rel: [{"rows": [li.incident.start_index, li.window[1]],
                        "metrics": list(ROOT_CAUSE_METRICS[li.incident.kind])}]
              for li in labelled if li.incident.kind in ROOT_CAUSE_METRICS}
    manifest = {"spec": {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in spec.__dict__.items()},
                "incidents": [{**li.incident.to_dict(), "file": li.rel,
                               "window_rows": list(li.window)} for li in labelled]}
    write_json(out / "labels" / "combined_windows.json", dict(sorted(windows.items())))
    write_json(out / "probation.json", {rels[s]: spec.history for s in sorted(
        plan.streams, key=rels.get)})
    write_json(out / "root_cause.json", dict(sorted(causes.items())))
    write_json(out / "incidents.json", manifest)
    return labelled


def _simulate(plan: TrafficPlan, spec: TrafficCorpusSpec) -> np.ndarray:
    """[steps, streams, metrics] of the plan's traffic."""
    generator = TrafficGenerator(plan, seed=spec.seed)
    values = np.empty((spec.steps, len(plan.streams), len(METRICS)))
    for t in range(spec.steps):
        for i, event in enumerate(generator.step()):
            values[t, i] = [event["metrics"][m] for m in METRICS]
    return values


def write_json(path: Path, value: object) -> None:
    """`value` as indented JSON at `path`, its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n")
