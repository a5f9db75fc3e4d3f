"""Engine.process(batch of events) → scores, alert decisions and explanations, in input order.

One Engine is one shard of streams (the daemon keeps one per Kafka partition, the replay one
per file), so its results depend only on the order of its own events, never on how they were
cut into batches. Its streams live in lanes (lane.py), one per width class of 4, 8, 16, 32
and 64 metrics up to DETECTOR_MODEL_MAX_METRICS: a stream's state is a row of its lane's
arrays, so a 4-metric stream costs a 4-metric row even when 64-metric hosts share the shard,
and each lane has its own model, as wide as its streams. `process`:

1. admission (admission.py) of new streams into their lanes, in event order; it may evict the
   stream seen least recently, and may ask for the batch to be cut there (CUT);
2. each lane steps its own events (lane.py: planning, normalisation and evidence, forecast,
   calibration, post rules, training, severity);
3. the lanes' results are put back in the batch's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from detector import __version__
from detector.engine.admission import CUT, Admission, lane_widths
from detector.engine.arena import StreamArena
from detector.engine.lane import Lane
from detector.engine.model_file import ModelFile, load_model
from detector.engine.types import (
    BatchResult,
    EngineConfig,
    Event,
    Rejection,
    SharedState,
    StreamState,
)

Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


@dataclass(frozen=True)
class LaneRows:
    """Some streams of one lane, with copies of their rows: what a checkpoint encodes."""

    layout: Layout
    streams: list[str]
    metric_names: list[tuple[str, ...]]
    rows: dict[str, np.ndarray]


class Engine:
    """One shard of streams: lanes by width, and the admission that fills them."""

    def __init__(self, config: EngineConfig, widths: tuple[int, ...] | None = None) -> None:
        """`widths`: the lanes (default: lane_widths of max_metrics); one width puts every
        stream in one lane, as offline training does to train one model."""
        self.config = config
        self.widths = widths or lane_widths(config.max_metrics)
        self.lanes: dict[int, Lane] = {}
        self.lane_of: dict[str, Lane] = {}
        self.events_processed = 0
        self.admission = Admission(config, self.widths, self.lanes.values, self._evict)
        self._model: ModelFile | None = None
        self.weights_digest = "online"
        if config.model_path:
            self._model = self._check_model(config.model_path)
            self.weights_digest = self._model.digest
        self._last_loss = float("nan")
        self._evicted = 0  # streams evicted so far

    # -- public ------------------------------------------------------------------------

    def process(self, events: Sequence[Event]) -> BatchResult:
        parts, start = [], 0
        while start == 0 or start < len(events):
            part = self._process(events[start:] if start else events)
            parts.append(part)
            start += len(part)
        return BatchResult.concat(parts)

    def lane(self, width: int) -> Lane:
        """The lane of this width, made on first use."""
        lane = self.lanes.get(width)
        if lane is None:
            lane = Lane(replace(self.config, max_metrics=width),
                        self.admission.lane_capacity(width))
            if self._model is not None and self._model.shape["max_metrics"] == width:
                lane.load_weights(self._model)
            self.lanes[width] = lane
        return lane

    @property
    def streams(self) -> int:
        """How many streams the engine holds (not __len__: an empty engine is still one)."""
        return len(self.lane_of)

    def slot_of(self, stream: str) -> int | None:
        """The stream's slot in its lane's arena; None when the engine does not hold it."""
        lane = self.lane_of.get(stream)
        return None if lane is None else lane.arena.slot(stream)

    def arena_of(self, stream: str) -> StreamArena | None:
        lane = self.lane_of.get(stream)
        return None if lane is None else lane.arena

    def set_learning(self, learn: bool) -> None:
        """Learn online or not from now on (offline evaluation scores without learning)."""
        self.config = replace(self.config, learn=learn)
        for lane in self.lanes.values():
            lane.config = lane.planner.config = replace(lane.config, learn=learn)

    @property
    def model_version(self) -> str:
        cfg = self.config
        kind = "bilstm-ae" if cfg.bidirectional else "lstm-ae"
        return f"{kind}/{__version__}/h{cfg.hidden_size}-w{cfg.window}/{self.weights_digest}"

    @property
    def last_train_loss(self) -> float:
        return self._last_loss

    @property
    def train_steps(self) -> int:
        return sum(lane.trainer.steps for lane in self.lanes.values())

    # -- one batch -------------------------------------------------------------------------

    def _process(self, events: Sequence[Event]) -> BatchResult:
        """The events up to where admission cut (all of them, unless it must evict a stream
        used earlier in the batch)."""
        seq0 = self.events_processed
        get = self.lane_of.get
        lanes = [get(ev.stream) for ev in events]
        rejected: dict[int, Rejection] = {}
        evicted_before = self._evicted
        n = self._admit(events, lanes, rejected, seq0) if None in lanes else len(events)
        seqs = np.arange(seq0, seq0 + n, dtype=np.int64)
        first = lanes[0] if n else None
        if n and not rejected and all(lane is first for lane in lanes[:n]):
            assert first is not None
            result = self._step(first, events[:n] if n < len(events) else events, seqs)
        else:
            result = self._route(events, lanes, n, seqs, rejected)
        result.evicted = self._evicted - evicted_before
        self.events_processed += n
        return result

    def _admit(self, events: Sequence[Event], lanes: list[Lane | None],
               rejected: dict[int, Rejection], seq0: int) -> int:
        """Enrol the batch's new streams in event order; how many events can be stepped now
        (fewer than all when admission cut). Known streams have their newest event recorded as
        the walk passes it, so an eviction later in the walk sees they are in use."""
        for i, ev in enumerate(events):
            lane = self.lane_of.get(ev.stream)  # afresh: the walk may have evicted it
            if lane is not None:
                slot = lane.arena.slot(ev.stream)
                lane.arena.arrays["last_seq"][slot] = seq0 + i
                lanes[i] = lane
                continue
            admitted = self.admission.admit(ev, seq0 + i, seq0)
            if isinstance(admitted, Rejection):
                rejected[i] = admitted
                continue
            if admitted == CUT:
                return i
            lane = self.lane(admitted)
            lane.enrol(ev, seq0 + i)
            self.lane_of[ev.stream] = lanes[i] = lane
        return len(events)

    def _route(self, events: Sequence[Event], lanes: list[Lane | None], n: int,
               seqs: np.ndarray, rejected: dict[int, Rejection]) -> BatchResult:
        """Each lane steps its own events; their results in the batch's order."""
        groups: dict[int, list[int]] = {}
        for i in range(n):
            lane = lanes[i]
            if i not in rejected and lane is not None:
                groups.setdefault(lane.width, []).append(i)
        width = max(groups, default=1)
        result = BatchResult.empty(n, width)
        for i, why in rejected.items():
            result.rejected[i] = why
        for w, members in groups.items():
            idx = np.array(members, dtype=np.int64)
            part = self._step(self.lanes[w], [events[i] for i in members], seqs[idx])
            result.put(idx, part)
        return result

    def _step(self, lane: Lane, events: Sequence[Event], seqs: np.ndarray) -> BatchResult:
        steps = lane.trainer.steps
        result = lane.process(events, seqs)
        if lane.trainer.steps != steps:
            self._last_loss = lane.trainer.last_loss
        return result

    def _evict(self, lane: Lane, stream: str, seq: int) -> None:
        lane.evict(stream, seq)
        del self.lane_of[stream]
        self._evicted += 1

    def _check_model(self, path: str) -> ModelFile:
        loaded = load_model(Path(path))
        cfg = self.config
        want = {k: v for k, v in cfg.shape.items() if k != "max_metrics"}
        got = {k: v for k, v in loaded.shape.items() if k != "max_metrics"}
        if got != want or loaded.shape.get("max_metrics") not in self.widths:
            raise ValueError(f"{path}: the model's shape {loaded.shape} does not match the "
                             f"settings {want} with a lane of {list(self.widths)} metrics")
        return loaded

    # -- checkpoint and restore ------------------------------------------------------------

    def take_changes(self) -> tuple[dict[int, np.ndarray], list[str]]:
        """(per lane width, slots whose state changed; streams evicted) since the last call:
        what the next checkpoint writes."""
        changed, evicted = {}, []
        for width, lane in self.lanes.items():
            changed[width], gone = lane.changes.take()
            evicted += gone
        return changed, evicted

    def rows(self, changed: dict[int, np.ndarray] | None) -> Iterator[LaneRows]:
        """Copies of the rows of the `changed` slots, or of every stream when None."""
        for width, lane in self.lanes.items():
            arena = lane.arena
            slots = (np.sort(arena.live_slots()).astype(np.int64) if changed is None
                     else changed.get(width, np.zeros(0, dtype=np.int64)))
            if slots.size:
                yield LaneRows(arena.specs, [arena.stream_ids[s] for s in slots],  # type: ignore[misc]
                               [arena.metric_names[s] for s in slots],
                               {name: arr[slots] for name, arr in arena.arrays.items()})

    def stream_state(self, stream: str) -> StreamState:
        lane = self.lane_of[stream]
        slot = lane.arena.slot(stream)
        assert slot is not None
        return StreamState(stream, lane.arena.metric_names[slot], lane.arena.row(slot))

    def layout_for(self, n_metrics: int) -> Layout:
        """The state layout of a stream of `n_metrics` metrics (KeyError-free: ValueError when
        no lane holds that many)."""
        if not 0 < n_metrics <= self.widths[-1]:
            raise ValueError(f"a stream of {n_metrics} metrics, more than "
                             f"DETECTOR_MODEL_MAX_METRICS={self.widths[-1]}")
        return self.lane(self.admission.width_for(n_metrics)).arena.specs

    def shared_state(self) -> SharedState:
        """Everything that is not per stream: per lane its weights, optimiser and pending
        windows; the admission's counters."""
        arrays, lanes = {}, {}
        for width, lane in self.lanes.items():
            state = lane.shared_state()
            arrays.update({f"{width}/{k}": v for k, v in state.arrays.items()})
            lanes[str(width)] = state.meta
        meta = {"events_processed": self.events_processed, "tokens": self.admission.tokens,
                "tokens_at": self.admission.tokens_at, "weights_digest": self.weights_digest,
                "lanes": lanes}
        return SharedState(arrays, meta)  # type: ignore[arg-type]

    def restore(self, shared: SharedState | None, streams: Iterable[StreamState]) -> None:
        """Load a checkpoint into this fresh engine: it then continues exactly where the
        engine that wrote the checkpoint stood."""
        if self.events_processed or self.streams:
            raise RuntimeError("restore needs a fresh engine")
        for st in streams:
            lane = self.lane(self.admission.width_for(len(st.metric_names)))
            lane.arena.put(st.stream, st.metric_names, st.row)
            self.lane_of[st.stream] = lane
        if shared is None:
            return
        meta = shared.meta
        for width, lane_meta in meta["lanes"].items():  # type: ignore[union-attr]
            prefix = f"{width}/"
            arrays = {k[len(prefix):]: v for k, v in shared.arrays.items()
                      if k.startswith(prefix)}
            self.lane(int(width)).restore_shared(SharedState(arrays, lane_meta))
        self.events_processed = int(meta["events_processed"])  # type: ignore[arg-type]
        self.admission.tokens = float(meta["tokens"])  # type: ignore[arg-type]
        self.admission.tokens_at = int(meta["tokens_at"])  # type: ignore[arg-type]
        # The weights go on from the checkpoint's, whatever DETECTOR_MODEL_PATH says now.
        self.weights_digest = str(meta["weights_digest"])
        trained = [lane for lane in self.lanes.values() if lane.trainer.steps]
        if trained:
            self._last_loss = trained[-1].trainer.last_loss
