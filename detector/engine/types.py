"""What goes into and comes out of the engine: events, configuration, results, state."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Event:
    stream: str
    ts: float  # epoch seconds
    metrics: Mapping[str, float]  # NaN = value missing (scored, not learned from)


# Why an event is not scored, as the label of the bad-record metric: a record without a usable
# key, too large, not a JSON event, without a valid timestamp, with metrics that are malformed
# or not the stream's, or a new stream beyond the admission limit.
REJECTION_KINDS = ("key", "size", "payload", "timestamp", "metrics", "admission")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event is bad input: one of REJECTION_KINDS, and a one-line detail."""

    kind: str
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in REJECTION_KINDS:
            raise ValueError(f"unknown rejection kind {self.kind!r}")

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class EngineConfig:
    hidden_size: int = 32
    window: int = 8
    max_metrics: int = 64
    learning_rate: float = 3e-3
    train_batch: int = 16
    learn: bool = True
    log_transform: bool = True
    normalizer_halflife: float = 500.0
    calibration_halflife: float = 2_000.0
    warmup_events: int = 64
    cooldown_events: int = 30
    spatial_margin: float = 0.02
    spatial_value_margin: float = 0.2
    spatial_halflife: float = 16.0
    spatial_warmup_s: float = 259_200.0
    spatial_drift_margin: float = 0.05
    spatial_drift_warmup_s: float = 604_800.0
    level_evidence: bool = True
    relation_evidence: bool = True
    daily_evidence: bool = True
    directions: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    threshold: float = 0.7
    critical_threshold: float = 0.9
    threshold_overrides: Mapping[str, float] = field(default_factory=dict)
    max_streams: int = 100_000
    admission_burst: int = 0          # new streams admitted back to back; 0 = max_streams
    admission_rate: float = 0.1       # new streams admitted per event after the burst
    initial_capacity: int = 1_024
    seed: int = 0
    model_path: str = ""
    bidirectional: bool = False
    seasonal_buckets: int = 0

    @property
    def shape(self) -> dict[str, int]:
        return {"hidden_size": self.hidden_size, "window": self.window,
                "max_metrics": self.max_metrics, "bidirectional": int(self.bidirectional)}

    @classmethod
    def from_settings(cls, settings: object) -> EngineConfig:
        m, a, s = settings.model, settings.alert, settings.state  # type: ignore[attr-defined]
        return cls(
            hidden_size=m.hidden_size, window=m.window, max_metrics=m.max_metrics,
            learning_rate=m.learning_rate, train_batch=m.train_batch, learn=m.learn,
            log_transform=m.log_transform, normalizer_halflife=m.normalizer_halflife,
            calibration_halflife=a.calibration_halflife, warmup_events=a.warmup_events,
            cooldown_events=a.cooldown_events, spatial_margin=a.spatial_margin,
            spatial_value_margin=a.spatial_value_margin, spatial_halflife=a.spatial_halflife,
            spatial_warmup_s=a.spatial_warmup_s, spatial_drift_margin=a.spatial_drift_margin,
            spatial_drift_warmup_s=a.spatial_drift_warmup_s, level_evidence=a.level_evidence,
            relation_evidence=a.relation_evidence, daily_evidence=a.daily_evidence,
            directions=dict(a.directions),
            threshold=a.threshold,
            critical_threshold=a.critical_threshold, threshold_overrides=dict(a.overrides),
            max_streams=s.max_streams, admission_burst=s.admission_burst,
            admission_rate=s.admission_rate, initial_capacity=s.initial_capacity, seed=m.seed,
            model_path=m.path, bidirectional=m.bidirectional,
            seasonal_buckets=m.seasonal_buckets)


@dataclass(frozen=True)
class StreamState:
    """One stream's whole state: what a checkpoint stores under the stream's key."""

    stream: str
    metric_names: tuple[str, ...]
    row: dict[str, np.ndarray]


@dataclass(frozen=True)
class SharedState:
    """An engine's state that is not per stream: arrays (weights, optimiser moments, pending
    training windows) and scalar counters."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, float | int | str]


# BatchResult's per-event arrays, aligned with the batch
_PER_EVENT = ("score", "raw_score", "error", "alert", "threshold", "warming", "expected", "actual",
              "contribution", "severity")


@dataclass
class BatchResult:
    """Per-event outcome, aligned with the input batch. Rejected events have a reason."""

    rejected: list[Rejection | None]
    score: np.ndarray      # published score: 0 while refractory after a higher one
    raw_score: np.ndarray  # score after warm-up and rule overrides, before the cooldown
    error: np.ndarray
    alert: np.ndarray
    threshold: np.ndarray
    warming: np.ndarray
    expected: np.ndarray  # [n, max_metrics] forecast in the metric's own units
    actual: np.ndarray    # [n, max_metrics]
    # [n, max_metrics] each metric's share of the evidence of its stream's recent unusual
    # events (ranking.py; sums to 1 over the event's valid metrics; NaN for the others)
    contribution: np.ndarray
    metric_names: list[tuple[str, ...]]
    severity: np.ndarray  # "critical" / "warning" for an alert, "" otherwise
    evicted: int = 0      # streams evicted to admit this batch's new ones

    @classmethod
    def empty(cls, n: int, max_metrics: int) -> BatchResult:
        """n events, none scored yet."""
        return cls(rejected=[None] * n, score=np.zeros(n), raw_score=np.zeros(n),
                   error=np.full(n, np.nan), alert=np.zeros(n, dtype=bool),
                   threshold=np.zeros(n), warming=np.zeros(n, bool),
                   expected=np.full((n, max_metrics), np.nan),
                   actual=np.full((n, max_metrics), np.nan),
                   contribution=np.full((n, max_metrics), np.nan), metric_names=[()] * n,
                   severity=np.full(n, "", dtype="<U8"))

    @classmethod
    def concat(cls, parts: list[BatchResult]) -> BatchResult:
        """One result of consecutive parts of a batch."""
        if len(parts) == 1:
            return parts[0]
        width = max(p.expected.shape[1] for p in parts)  # parts' lanes may differ

        def widened(a: np.ndarray) -> np.ndarray:
            if a.ndim == 1 or a.shape[1] == width:
                return a
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)

        arrays = {name: np.concatenate([widened(getattr(p, name)) for p in parts])
                  for name in _PER_EVENT}
        return cls(rejected=[r for p in parts for r in p.rejected],
                   metric_names=[m for p in parts for m in p.metric_names],
                   evicted=sum(p.evicted for p in parts), **arrays)

    def put(self, idx: np.ndarray, part: BatchResult) -> None:
        """Write `part`, the result of events `idx` of this batch, in their places (its
        metric columns may be fewer than this result's)."""
        for name in _PER_EVENT:
            mine, theirs = getattr(self, name), getattr(part, name)
            if theirs.ndim == 2:
                mine[idx, :theirs.shape[1]] = theirs
            else:
                mine[idx] = theirs
        for j, i in enumerate(idx.tolist()):
            self.rejected[i] = part.rejected[j]
            self.metric_names[i] = part.metric_names[j]

    def truncate(self, n: int) -> BatchResult:
        """The result of the first n events."""
        arrays = {name: getattr(self, name)[:n]
                  for name in _PER_EVENT}
        return BatchResult(rejected=self.rejected[:n], metric_names=self.metric_names[:n],
                           evicted=self.evicted, **arrays)

    def __len__(self) -> int:
        return len(self.rejected)

    def explanation(self, i: int) -> tuple[dict[str, float], dict[str, float]]:
        """(expected, actual) per metric for event i."""
        names = self.metric_names[i]
        expected = {n: float(self.expected[i, j]) for j, n in enumerate(names)}
        actual = {n: float(self.actual[i, j]) for j, n in enumerate(names)}
        return expected, actual

    def ranked(self, i: int) -> list[tuple[str, float]]:
        """(metric, share) of event i's valid metrics, the largest share first (ties in the
        stream's metric order): the metrics that made the stream unusual lately."""
        shares = [(n, float(self.contribution[i, j])) for j, n in enumerate(self.metric_names[i])
                  if not math.isnan(self.contribution[i, j])]
        return sorted(shares, key=lambda pair: -pair[1])
