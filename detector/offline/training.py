"""Offline training and evaluation, Keras style, on recorded history (CSV files).

An epoch is one pass of the daemon's own online learning over the training part of every
stream (the streams interleaved by time, as one partition delivers them); the validation loss
is the mean forecast error on the held-out tail of each stream, scored without learning.
Early stopping keeps the best epoch's weights, which `detector run` starts from
(DETECTOR_MODEL_PATH) and keeps refining online.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.engine import Engine, EngineConfig, Event
from detector.engine.admission import lane_widths, narrowest_lane
from detector.engine.model_file import save_model
from detector.offline.csv_format import read_input
from detector.offline.replay import events_of


@dataclass(frozen=True)
class Stream:
    name: str
    events: tuple[Event, ...]


@dataclass
class History:
    epochs: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    best_epoch: int = 0


def load_streams(paths: Sequence[tuple[Path, str]],
                 on_problem: Callable[[str], None] | None = None) -> list[Stream]:
    """Each CSV as one stream, every row an event, read by the input rules of
    detector.offline.csv_format (as replay reads it); `on_problem` hears of each bad row."""
    streams = []
    for path, name in paths:
        source = read_input(path)
        if on_problem is not None:
            for problem in source.problems:
                on_problem(problem)
        streams.append(Stream(name, tuple(events_of(source, name))))
    return streams


def split(streams: Sequence[Stream], validation_split: float
          ) -> tuple[list[Stream], list[Stream]]:
    """Time-ordered split: the last `validation_split` of every stream is held out."""
    train, val = [], []
    for s in streams:
        cut = len(s.events) - int(round(len(s.events) * validation_split))
        train.append(Stream(s.name, s.events[:cut]))
        val.append(Stream(s.name, s.events[cut:]))
    return train, val


def interleave(streams: Sequence[Stream]) -> Iterator[Event]:
    """Events of all streams merged by time, each stream's own order kept."""
    return heapq.merge(*(s.events for s in streams), key=lambda e: e.ts)


def _run(engine: Engine, events: Iterator[Event], batch: int = 512,
         on_events: Callable[[int], None] | None = None) -> float:
    """Feed events; the mean forecast error (normalised units) of the scored ones."""
    total, count, chunk = 0.0, 0, []
    for event in events:
        chunk.append(event)
        if len(chunk) == batch:
            total, count = _accumulate(engine, chunk, total, count, on_events)
            chunk = []
    if chunk:
        total, count = _accumulate(engine, chunk, total, count, on_events)
    return total / count if count else math.nan


def _accumulate(engine: Engine, chunk: list[Event], total: float, count: int,
                on_events: Callable[[int], None] | None) -> tuple[float, int]:
    result = engine.process(chunk)
    scored = ~np.isnan(result.error) & ~result.warming
    if on_events is not None:
        on_events(len(chunk))
    return total + float(result.error[scored].sum()), count + int(scored.sum())


def fit(streams: Sequence[Stream], config: EngineConfig, *, epochs: int,
        validation_split: float, patience: int,
        on_epoch: Callable[[int, float, float], None] | None = None,
        on_events: Callable[[int], None] | None = None) -> tuple[Engine, History]:
    """Train for up to `epochs`; returns an engine holding the best weights and the history."""
    train, val = split(streams, validation_split)
    width = lane_width(streams, config)
    template = Engine(config, widths=(width,)).lane(width)
    history = History()
    best_state, best_loss, waited = None, math.inf, 0
    for epoch in range(1, epochs + 1):
        engine = Engine(config, widths=(width,))  # fresh per-stream state
        lane = engine.lane(width)                 # carried weights and optimiser
        lane.model.load_state_dict(template.model.state_dict())
        lane.trainer.optimizer.load_state_dict(template.trainer.optimizer.state_dict())
        train_loss = _run(engine, interleave(train), on_events=on_events)
        engine.set_learning(False)
        val_loss = _run(engine, interleave(val), on_events=on_events)
        template = lane
        history.epochs.append(epoch)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
        monitored = val_loss if not math.isnan(val_loss) else train_loss
        if monitored < best_loss - 1e-6:
            best_loss, waited, history.best_epoch = monitored, 0, epoch
            best_state = {k: v.clone() for k, v in lane.model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    final = Engine(config, widths=(width,))
    if best_state is not None:
        final.lane(width).model.load_state_dict(best_state)
    return final, history


def lane_width(streams: Sequence[Stream], config: EngineConfig) -> int:
    """The one lane offline training and evaluation put every stream in: the narrowest that
    holds the widest stream (a model is as wide as its lane; the daemon loads it into the lane
    of that width)."""
    widest = max((len(s.events[0].metrics) for s in streams if s.events), default=1)
    return narrowest_lane(lane_widths(config.max_metrics), widest)


def save_trained(engine: Engine, path: Path, history: History, sources: Sequence[str]) -> str:
    meta = {"epochs": history.epochs, "train_loss": history.train_loss,
            "val_loss": history.val_loss, "best_epoch": history.best_epoch,
            "sources": list(sources)}
    (lane,) = engine.lanes.values()
    return save_model(path, lane.model, lane.config.shape, meta)


def evaluate(streams: Sequence[Stream], config: EngineConfig) -> tuple[float, dict[str, dict]]:
    """Mean forecast error over all streams (no learning), and per stream its scores/alerts."""
    width = lane_width(streams, config)
    engine = Engine(dataclasses.replace(config, learn=False), widths=(width,))
    per_stream: dict[str, dict] = {}
    total, count = 0.0, 0
    for s in streams:
        result = engine.process(list(s.events))
        scored = ~np.isnan(result.error) & ~result.warming
        total += float(result.error[scored].sum())
        count += int(scored.sum())
        per_stream[s.name] = {"score": result.score, "alert": result.alert}
    return (total / count if count else math.nan), per_stream
