"""Engine.process(batch of events) → scores, alert decisions and explanations, in input order.

One Engine is one shard of streams with its own model (the daemon keeps one per Kafka
partition, the replay one per file), so its results depend only on the order of its own
events, never on how they were cut into batches. `process` runs the stages in order:

1. planning (plan.py): each event's slot, segment and wave; new streams pass admission
   (admission.py), which may evict the stream seen least recently;
2. per segment of waves (the weights are fixed within one):
   a. normalisation and evidence (observe.py, evidence/): the events normalised against their
      streams' statistics, the range rule and seasonal steps, the training windows;
   b. forecast (forecast.py): the LSTM autoencoder's expectation from each stream's state;
   c. calibration (calibrate.py): residuals → a score in [0, 1] that means the same rarity on
      every stream;
   d. post rules (post_rules.py): warm-up → rule overrides → threshold → cooldown;
   e. training (trainer.py): a step once `train_batch` windows are complete;
3. severity of the alerts (post_rules.py).

Each pass walks the waves in order where state carries from one wave to the next and works on
the whole segment at once where it does not; every event goes through the operations of a
wave-by-wave step, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401 - built optimizers import it (1-3 s): pay that at start-up

from detector import __version__
from detector.engine import normalizer, post_rules
from detector.engine.admission import Admission
from detector.engine.arena import N_TIME_FEATURES, ArenaShape, StreamArena
from detector.engine.calibrate import calibrate
from detector.engine.changes import Changes
from detector.engine.features import time_features
from detector.engine.forecast import forecast
from detector.engine.lstm_ae import LstmAutoencoder
from detector.engine.model_file import load_model
from detector.engine.observe import observe
from detector.engine.plan import Planner
from detector.engine.trainer import Trainer
from detector.engine.types import BatchResult, EngineConfig, Event, SharedState, StreamState


class Engine:
    """One shard of streams: arena + model + online trainer."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.arena = StreamArena(
            ArenaShape(config.hidden_size, config.window, config.max_metrics,
                       config.seasonal_buckets),
            capacity=config.initial_capacity, max_streams=config.max_streams)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = LstmAutoencoder(config.max_metrics, N_TIME_FEATURES,
                                         config.hidden_size, config.window,
                                         bidirectional=config.bidirectional)
        self.weights_digest = "online"
        if config.model_path:
            self._load_weights(config.model_path)
        self.trainer = Trainer(self.model, config.learning_rate)
        self.events_processed = 0
        self.changes = Changes()
        self.admission = Admission(config, self.arena, self.changes)
        self.planner = Planner(config, self.arena, self.changes, self.admission)

    # -- public ------------------------------------------------------------------------

    def process(self, events: Sequence[Event]) -> BatchResult:
        parts, start = [], 0
        while start == 0 or start < len(events):
            part = self._process(events[start:] if start else events)
            parts.append(part)
            start += len(part)
        return BatchResult.concat(parts)

    def _process(self, events: Sequence[Event]) -> BatchResult:
        """The events up to the plan's cut (all of them, unless admission must evict a stream
        used earlier in the batch)."""
        result = BatchResult.empty(len(events), self.config.max_metrics)
        evicted_before = len(self.changes.evicted)
        plan = self.planner.plan(events, result, self.events_processed,
                                 len(self.trainer.pending))
        if plan.cut is not None:
            result = result.truncate(plan.cut)
        result.evicted = len(self.changes.evicted) - evicted_before
        n = len(result)
        accepted = np.flatnonzero(plan.slots >= 0)
        if accepted.size:
            ts_all = np.zeros(n)
            ts_all[accepted] = [events[i].ts for i in accepted]
            order = accepted[np.lexsort((accepted, plan.wave[accepted],
                                         plan.segment[accepted]))]
            seq0 = self.events_processed
            for seg_idx in np.split(order, np.flatnonzero(np.diff(plan.segment[order])) + 1):
                waves = np.split(seg_idx, np.flatnonzero(np.diff(plan.wave[seg_idx])) + 1)
                self._step_segment(waves, plan.slots, ts_all, seq0, result)
                # The plan cut this segment exactly where train_batch windows became ready.
                if len(self.trainer.pending) >= self.config.train_batch:
                    self.trainer.step()
            result.severity = post_rules.severity(result.score, result.alert,
                                                  self.config.critical_threshold)
        self.events_processed += n
        return result

    def take_changes(self) -> tuple[np.ndarray, list[str]]:
        """(slots whose state changed, streams evicted) since the last call: what the next
        checkpoint writes."""
        return self.changes.take()

    @property
    def model_version(self) -> str:
        cfg = self.config
        kind = "bilstm-ae" if cfg.bidirectional else "lstm-ae"
        return f"{kind}/{__version__}/h{cfg.hidden_size}-w{cfg.window}/{self.weights_digest}"

    @property
    def last_train_loss(self) -> float:
        return self.trainer.last_loss

    @property
    def train_steps(self) -> int:
        return self.trainer.steps

    def slot_of(self, stream: str) -> int | None:
        return self.arena.slot(stream)

    def _load_weights(self, path: str) -> None:
        loaded = load_model(Path(path))
        if loaded.shape != self.config.shape:
            raise ValueError(f"{path}: the model's shape {loaded.shape} does not match the "
                             f"settings {self.config.shape}")
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.weights.items()})
        self.weights_digest = loaded.digest

    # -- checkpoint and restore ------------------------------------------------------------

    def stream_state(self, slot: int) -> StreamState:
        arena = self.arena
        stream = arena.stream_ids[slot]
        if stream is None:
            raise KeyError(f"slot {slot} holds no stream")
        return StreamState(stream, arena.metric_names[slot], arena.row(slot))

    def shared_state(self) -> SharedState:
        """Everything that is not per stream: weights, optimiser, pending windows, counters."""
        trainer, admission = self.trainer, self.admission
        meta = {"events_processed": self.events_processed, "train_steps": trainer.steps,
                # JSON has no NaN: an engine that has not trained yet stores None.
                "last_train_loss": (trainer.last_loss if math.isfinite(trainer.last_loss)
                                    else None),
                "tokens": admission.tokens, "tokens_at": admission.tokens_at,
                "pending": len(trainer.pending), "weights_digest": self.weights_digest}
        return SharedState(trainer.state(), meta)

    def restore(self, shared: SharedState | None, streams: Iterable[StreamState]) -> None:
        """Load a checkpoint into this fresh engine: it then continues exactly where the
        engine that wrote the checkpoint stood."""
        if self.events_processed or len(self.arena):
            raise RuntimeError("restore needs a fresh engine")
        for st in streams:
            self.arena.put(st.stream, st.metric_names, st.row)
        if shared is None:
            return
        meta = shared.meta
        self.trainer.restore(shared.arrays, int(meta["pending"]))
        self.events_processed = int(meta["events_processed"])
        self.trainer.steps = int(meta["train_steps"])
        loss = meta["last_train_loss"]
        self.trainer.last_loss = float("nan") if loss is None else float(loss)
        self.admission.tokens = float(meta["tokens"])
        self.admission.tokens_at = int(meta["tokens_at"])
        self.weights_digest = str(meta["weights_digest"])

    # -- one segment of waves ------------------------------------------------------------

    def _step_segment(self, waves: list[np.ndarray], slots: np.ndarray, ts_all: np.ndarray,
                      seq0: int, result: BatchResult) -> None:
        """Stages 2a-2d over one segment (rows of `result` in wave order)."""
        cfg, a = self.config, self.arena.arrays
        rows = np.concatenate(waves)
        s_all = slots[rows]
        bounds = list(itertools.pairwise(np.cumsum([0] + [w.size for w in waves]).tolist()))
        x = result.actual[rows]
        y = normalizer.compress(x, cfg.log_transform)
        valid = (a["metric_mask"][s_all] > 0) & ~np.isnan(y)
        y = np.where(valid, y, 0.0)
        ts = ts_all[rows]
        tf = time_features(ts)
        obs = observe(cfg, a, bounds, s_all, ts, x, y, valid, tf)
        expected = forecast(self.model, a, bounds, s_all, rows + seq0, obs, valid, tf,
                            cfg.bidirectional, self.trainer.pending)
        residual = np.where(valid, obs.z - expected, 0.0)
        n_valid = valid.sum(axis=1)
        result.error[rows] = np.where(n_valid > 0, (residual * residual).sum(axis=1)
                                      / np.maximum(n_valid, 1), np.nan)
        result.expected[rows] = normalizer.decompress(
            normalizer.denormalise(expected, obs.mean, obs.unit), cfg.log_transform)
        calibrated, result.contribution[rows] = calibrate(cfg, a, bounds, s_all, obs, residual,
                                                          valid)
        warming = obs.seen < cfg.warmup_events
        decided = post_rules.decide(bounds, s_all, calibrated, warming,
                                    obs.outside if cfg.spatial_margin > 0 else None, a,
                                    cfg.cooldown_events)
        result.score[rows], result.raw_score[rows] = decided.published, decided.raw
        result.alert[rows], result.threshold[rows] = decided.alert, decided.threshold
        result.warming[rows] = warming
