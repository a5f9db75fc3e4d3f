"""One lane of an engine: the streams of one width class, their arena, model and trainer.

A lane steps its streams as the engine once did alone (engine.py routes each stream to the
lane of its width). `Lane.process` runs the stages in order:

1. planning (plan.py): each event's slot, segment and wave (the engine's admission has given
   every new stream its slot with `enrol` before);
2. normalisation and evidence (observe.py, evidence/), over the whole batch in waves that span
   its segments (wave i: the i-th event of every stream): the events normalised against their
   streams' statistics, the range rule and seasonal steps, the training windows;
3. per segment (the weights are fixed within one):
   a. forecast (forecast.py): the LSTM autoencoder's expectation from each stream's state;
   b. training (trainer.py): a step where the plan cut the segment (`plan.step_size`
      windows complete: `train_batch`, more in a lane crowded with streams);
4. over the whole batch again: calibration (calibrate.py: residuals → a score in [0, 1] that
   means the same rarity on every stream), post rules (post_rules.py: warm-up → rule
   overrides → threshold → cooldown), severity.

Only the forecast depends on the weights, so only it pays per training step; the other stages
pay once per batch.

Each pass walks the waves in order where state carries from one wave to the next and works on
the whole segment (or batch) at once where it does not; every event goes through the
operations of a wave-by-wave step, bit for bit. A lane's results depend only on the order of
its own events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch._dynamo  # noqa: F401 - built optimizers import it (1-3 s): pay that at start-up

from detector.engine import direction, normalizer, post_rules
from detector.engine.admission import shape_of
from detector.engine.arena import N_TIME_FEATURES, StreamArena
from detector.engine.calibrate import calibrate
from detector.engine.changes import Changes
from detector.engine.features import time_features
from detector.engine.forecast import forecast
from detector.engine.lstm_ae import LstmAutoencoder
from detector.engine.model_file import ModelFile
from detector.engine.observe import observe
from detector.engine.plan import Plan, Planner
from detector.engine.post_rules import threshold_for
from detector.engine.trainer import Trainer
from detector.engine.types import BatchResult, EngineConfig, Event, SharedState


class Lane:
    """The streams of one width: arena + model + online trainer. `config.max_metrics` is the
    lane's width."""

    def __init__(self, config: EngineConfig, max_streams: int) -> None:
        self.config = config
        self.width = config.max_metrics
        self.arena = StreamArena(shape_of(config, self.width),
                                 capacity=min(config.initial_capacity, max_streams),
                                 max_streams=max_streams)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = LstmAutoencoder(config.max_metrics, N_TIME_FEATURES,
                                         config.hidden_size, config.window,
                                         bidirectional=config.bidirectional)
        self.trainer = Trainer(self.model, config.learning_rate)
        self.events_processed = 0
        self.changes = Changes()
        self.planner = Planner(config, self.arena, self.changes)
        # (event number, +1 / -1): streams enrolled and evicted since the lane's last batch;
        # the plan counts the lane's streams at each event from them.
        self.joins: list[tuple[int, int]] = []

    def enrol(self, ev: Event, seq: int) -> int:
        """A slot for a new stream the engine's admission let in, in its initial state;
        `seq`: the engine's number of its first event."""
        cfg, arena = self.config, self.arena
        names = tuple(ev.metrics)
        slot = arena.add(ev.stream, names, threshold_for(ev.stream, cfg.threshold,
                                                         cfg.threshold_overrides))
        arena.arrays["direction"][slot, :len(names)] = direction.for_stream(
            ev.stream, names, cfg.directions)
        # Streams admitted together (a fleet at start-up, every stream reporting at one
        # cadence) would complete their windows on the same events forever, and a whole
        # fleet's training steps would fall into one batch: a latency spike every `window`
        # steps. Each stream's windows start at its admission's place in the event sequence.
        arena.arrays["chunk_pos"][slot] = seq % cfg.window
        arena.arrays["last_seq"][slot] = seq
        self.changes.dirty.add(slot)
        self.joins.append((seq, 1))
        return slot

    def evict(self, stream: str, seq: int) -> None:
        """Forget a stream (the engine's admission needs its room for the new stream of
        event `seq`)."""
        slot = self.arena.remove(stream)
        self.changes.dirty.discard(slot)
        self.changes.evicted.append(stream)
        self.joins.append((seq, -1))

    def process(self, events: Sequence[Event], seqs: np.ndarray) -> BatchResult:
        """Step events of streams enrolled in this lane; `seqs`: their numbers in the
        engine's event sequence (what `last_seq` records)."""
        result = BatchResult.empty(len(events), self.width)
        plan = self.planner.plan(events, seqs, result, len(self.trainer.pending), self.joins)
        self.joins.clear()
        n = len(result)
        accepted = plan.accepted
        if accepted.size:
            ts = np.zeros(n)
            ts[accepted] = [events[i].ts for i in accepted]
            self._step(plan, ts, result)
            result.severity = post_rules.severity(result.score, result.alert,
                                                  self.config.critical_threshold)
        self.events_processed += n
        return result

    def load_weights(self, loaded: ModelFile) -> None:
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.weights.items()})

    # -- checkpoint and restore ------------------------------------------------------------

    def shared_state(self) -> SharedState:
        """Weights, optimiser, pending windows, counters."""
        trainer = self.trainer
        meta = {"events_processed": self.events_processed, "train_steps": trainer.steps,
                # JSON has no NaN: a lane that has not trained yet stores None.
                "last_train_loss": (trainer.last_loss if math.isfinite(trainer.last_loss)
                                    else None),
                "pending": len(trainer.pending)}
        return SharedState(trainer.state(), meta)

    def restore_shared(self, shared: SharedState) -> None:
        meta = shared.meta
        self.trainer.restore(shared.arrays, int(meta["pending"]))
        self.events_processed = int(meta["events_processed"])
        self.trainer.steps = int(meta["train_steps"])
        loss = meta["last_train_loss"]
        self.trainer.last_loss = float("nan") if loss is None else float(loss)

    # -- one batch ------------------------------------------------------------------------

    def _step(self, plan: Plan, ts_all: np.ndarray, result: BatchResult) -> None:
        """Stages 2-4 for the accepted events of `result` (`ts_all`: their timestamps)."""
        cfg, a, model = self.config, self.arena.arrays, self.model
        batch = plan.batch()
        rows, s_all, bounds = batch.rows, batch.slots, batch.bounds
        x = result.actual[rows]
        y = normalizer.compress(x, cfg.log_transform)
        valid = (a["metric_mask"][s_all] > 0) & ~np.isnan(y)
        y = np.where(valid, y, 0.0)
        ts = ts_all[rows]
        tf = time_features(ts)
        obs = observe(cfg, a, bounds, s_all, ts, x, y, valid, tf)
        expected = np.empty(valid.shape)
        at = np.empty(result.score.size, dtype=np.int64)  # row of result → place in batch
        at[rows] = np.arange(rows.size)
        seq0 = self.events_processed
        segments = plan.segments()
        for i, segment in enumerate(segments):
            take = at[segment.rows]
            expected[take] = forecast(model, a, segment.bounds, segment.slots,
                                      segment.rows + seq0, obs.take(take), valid[take],
                                      tf[take], cfg.bidirectional, self.trainer.pending)
            # The plan cut this segment exactly where a step's windows became ready.
            if i < len(segments) - 1 or plan.ends_with_step:
                self.trainer.step()
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
