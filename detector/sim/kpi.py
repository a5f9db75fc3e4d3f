"""Simulated cloud-service KPIs written as a labelled corpus in NAB's layout, for `bench corpus`.

The traffic corpus (corpus.py) is network telemetry: large, smooth, correlated counters. A
service's KPIs are not like that, and a detector tuned on smooth counters fails on them in
ways of their own: a crash counter sits at 0 and shows a 1 a few times a day, a p99 latency
has a heavy tail of single slow minutes, an error rate of a few requests a minute is 0 most
of the time and a whole percent at night. So each file here is one KPI of one service, one
metric a minute, with a daily load cycle and quieter weekends:

- `requests` per minute (Poisson around the load): an outage drop to 30 % for 20 minutes, a
  3x spike for 5, or a permanent 60 % rise;
- `latency_ms`, a p99 (log-normal around 80 + 60 x load, 0.3 % of minutes 2-4x slower): 2.5x
  for 30 minutes, or a 3-hour ramp to 2.5x that then ends;
- `crashes` per minute (Poisson, about 6 a day): a burst of about 2 a minute for 15 minutes;
- `error_pct`, the percentage of the minute's requests that failed (0.2 %): 5 % for 10 minutes.

Every kind of incident is injected on `per_kind` files of its own, and every KPI has `clean`
files without one. The first `history_days` are unlabelled history (probation.json) and the
incidents start after it; a window runs from an hour before an incident to two hours after
its last step (after its first for the permanent rise). No root_cause.json: one metric a file.
The same spec writes byte-identical files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from detector.sim.corpus import TIMESTAMP_FORMAT, write_json

LEAD_STEPS, LAG_STEPS = 60, 120  # the label window around an incident, in minutes
START_TS = 1772409600.0  # 2026-03-02 00:00 UTC, a Monday


@dataclass(frozen=True)
class KpiIncident:
    """One kind of incident of a KPI: its length in steps (0: to the end of the file)."""

    kpi: str
    kind: str
    steps: int


INCIDENTS: tuple[KpiIncident, ...] = (
    KpiIncident("requests", "drop", 20), KpiIncident("requests", "spike", 5),
    KpiIncident("requests", "shift", 0), KpiIncident("latency_ms", "sustained", 30),
    KpiIncident("latency_ms", "ramp", 180), KpiIncident("crashes", "burst", 15),
    KpiIncident("error_pct", "burst", 10),
)
KPIS: tuple[str, ...] = tuple(dict.fromkeys(i.kpi for i in INCIDENTS))
PERMANENT_LABEL_STEPS = 1  # a permanent change is labelled by its first step


@dataclass(frozen=True)
class KpiCorpusSpec:
    """What to simulate: files per incident kind, clean files per KPI, length, seed."""

    per_kind: int = 3
    clean: int = 3
    days: float = 14.0
    history_days: float = 5.0
    seed: int = 11

    @property
    def steps(self) -> int:
        return round(self.days * 1440)

    @property
    def history(self) -> int:
        return round(self.history_days * 1440)


def load(steps: int) -> np.ndarray:
    """Relative load per minute in (0, 1]: a daily cycle peaking mid-afternoon, 0.7 of it
    on Saturdays and Sundays."""
    minute = np.arange(steps)
    day = (minute % 1440) / 1440
    weekend = ((START_TS / 86_400 + minute // 1440 + 3) % 7) >= 5  # 1970-01-01 a Thursday
    return (0.55 + 0.45 * np.sin(2 * np.pi * (day - 0.3))) * np.where(weekend, 0.7, 1.0)


def _requests(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    return rng.poisson(lam).astype(float)


def simulate(kpi: str, incident: KpiIncident | None, start: int, steps: int,
             rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One file's values, and the last step of its incident (-1 without one)."""
    busy = load(steps)
    span = slice(start, start + incident.steps if incident and incident.steps else steps)
    kind = incident.kind if incident else ""
    if kpi == "requests":
        lam = (40 + 400 * busy) * rng.uniform(0.7, 1.3)
        factor = {"drop": 0.3, "spike": 3.0, "shift": 1.6}.get(kind)
        if factor:
            lam[span] *= factor
        values = _requests(rng, lam)
    elif kpi == "latency_ms":
        values = (80 + 60 * busy) * rng.lognormal(0.0, 0.15, steps)
        slow = rng.random(steps) < 0.003
        values[slow] *= rng.uniform(2.0, 4.0, int(slow.sum()))
        if kind == "sustained":
            values[span] *= 2.5
        elif kind == "ramp":
            values[span] *= np.linspace(1.0, 2.5, incident.steps)
        values = np.round(values, 1)
    elif kpi == "crashes":
        values = rng.poisson(0.004, steps).astype(float)
        if kind == "burst":
            values[span] = rng.poisson(2.0, incident.steps)
    else:  # error_pct
        served = np.maximum(_requests(rng, 40 + 400 * busy), 1.0)
        rate = np.full(steps, 0.002)
        if kind == "burst":
            rate[span] = 0.05
        values = np.round(100.0 * rng.binomial(served.astype(np.int64), rate) / served, 3)
    end = -1 if incident is None else (
        start + PERMANENT_LABEL_STEPS - 1 if incident.steps == 0 else start + incident.steps - 1)
    return values, end


def write_kpi_corpus(out: Path, spec: KpiCorpusSpec) -> dict[str, list[int]]:
    """Simulate and write the corpus under `out` (data/, labels/, probation.json,
    incidents.json); returns each file's incident rows ([] for a clean file)."""
    if spec.per_kind < 0 or spec.clean < 0 or spec.per_kind + spec.clean < 1:
        raise ValueError("per_kind and clean must not be negative, and make at least one file")
    longest = max(i.steps for i in INCIDENTS)
    earliest, latest = spec.history + LEAD_STEPS, spec.steps - LAG_STEPS - longest - 1
    if latest < earliest:
        raise ValueError(f"{spec.days} days leave no room for incidents after "
                         f"{spec.history_days} days of history")
    rng = np.random.default_rng(spec.seed)
    stamps = [datetime.fromtimestamp(START_TS + 60.0 * t, tz=UTC).strftime(TIMESTAMP_FORMAT)
              for t in range(spec.steps)]
    plan: list[tuple[str, KpiIncident | None]] = [
        (f"{i.kpi}/{i.kind}_{n}.csv", i) for i in INCIDENTS for n in range(spec.per_kind)]
    plan += [(f"{kpi}/clean_{n}.csv", None) for kpi in KPIS for n in range(spec.clean)]
    windows: dict[str, list[list[str]]] = {}
    rows: dict[str, list[int]] = {}
    for rel, incident in plan:
        start = int(rng.integers(earliest, latest + 1))
        values, end = simulate(rel.split("/")[0], incident, start, spec.steps, rng)
        _write_csv(out / "data" / rel, rel.split("/")[0], stamps, values)
        rows[rel] = [] if incident is None else [start, end]
        windows[rel] = [] if incident is None else [
            [stamps[start - LEAD_STEPS], stamps[min(end + LAG_STEPS, spec.steps - 1)]]]
    write_json(out / "labels" / "combined_windows.json", dict(sorted(windows.items())))
    write_json(out / "probation.json", {rel: spec.history for rel in sorted(windows)})
    write_json(out / "incidents.json", {"spec": spec.__dict__, "incident_rows": rows})
    return rows


def _write_csv(path: Path, metric: str, stamps: list[str], values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("timestamp", metric))
        writer.writerows((stamp, f"{v:.10g}") for stamp, v in zip(stamps, values, strict=True))

