"""Match published alerts to the incidents a traffic plan injected: caught, missed, other."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from detector.records import parse_ts
from detector.sim.traffic import Incident, TrafficPlan


@dataclass(frozen=True)
class Match:
    detected: dict[Incident, list[Mapping]]  # incident -> alerts inside its window
    missed: list[Incident]
    unexpected: list[Mapping]                # alerts outside every incident window


def incident_for(alert: Mapping, plan: TrafficPlan, grace_steps: int = 3) -> Incident | None:
    """The incident whose window (plus a grace of a few steps) holds the alert, if any."""
    ts = parse_ts(alert["ts"])
    if isinstance(ts, str):
        return None
    grace = grace_steps * plan.step_seconds
    for incident in plan.incidents_for(str(alert["stream"])):
        if incident.start_ts <= ts <= incident.end_ts + grace:
            return incident
    return None


def match_alerts(plan: TrafficPlan, alerts: Iterable[Mapping], grace_steps: int = 3) -> Match:
    detected: dict[Incident, list[Mapping]] = {}
    unexpected: list[Mapping] = []
    for alert in alerts:
        incident = incident_for(alert, plan, grace_steps)
        if incident is None:
            unexpected.append(alert)
        else:
            detected.setdefault(incident, []).append(alert)
    missed = [i for i in plan.incidents if i not in detected]
    return Match(detected, missed, unexpected)
