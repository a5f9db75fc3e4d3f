"""Engine.process(batch of events) → scores, alert decisions and explanations, in input order.

One Engine is one shard of streams with its own model (the daemon keeps one per Kafka
partition, the replay one per file), so its results depend only on the order of its own
events, never on how they were cut into batches:

* events of one batch are stepped in *waves*: the i-th event of every stream in the batch
  forms wave i, one vectorised step across streams, so a stream's events keep their order;
* the shared weights change only at fixed points of the event sequence (every `train_batch`
  completed windows), and a batch is split into segments at those points;
* a stream's windows are phased by its admission's place in the event sequence, so streams
  that report together do not complete (and train) their windows all on the same events.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401 - built optimizers import it (1-3 s): pay that at start-up

from detector import __version__
from detector.engine import calibrator, normalizer, policy
from detector.engine.arena import N_TIME_FEATURES, ArenaShape, StreamArena
from detector.engine.lstm_ae import LstmAutoencoder
from detector.engine.types import BatchResult, EngineConfig, Event, SharedState, StreamState
from detector.state.model_file import load_model

SECONDS_PER_DAY = 86_400.0
SEASON_MIN_SEEN = 2   # a time-of-day step counts once seen on two days
SEASON_RATE = 0.2     # later days weigh in at this rate


def _occurrence(slots: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Per element, how many earlier elements (of the same group) hold the same slot."""
    keys = slots if groups is None else groups * (int(slots.max()) + 1) + slots
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    run_start = np.repeat(starts, np.diff(np.append(starts, keys.size)))
    out = np.empty(keys.size, dtype=np.int64)
    out[order] = np.arange(keys.size) - run_start
    return out


def time_features(ts: np.ndarray) -> np.ndarray:
    """sin/cos of time of day and of day of week (Monday 00:00 UTC = 0), shape [B, 4]."""
    day = np.mod(ts, SECONDS_PER_DAY) / SECONDS_PER_DAY
    week = np.mod(ts / SECONDS_PER_DAY + 3.0, 7.0) / 7.0  # 1970-01-01 was a Thursday
    tau = 2.0 * math.pi
    return np.stack((np.sin(tau * day), np.cos(tau * day),
                     np.sin(tau * week), np.cos(tau * week)), axis=1).astype(np.float32)


@dataclass
class _Observed:
    """What the first pass over a segment hands on, one row per event: z (float32), the
    persistence prior `last`, the normaliser's mean and unit before the event, events seen
    before it, the spatial verdict; per wave, the encoder's window inputs and the windows
    completed ((slots, [(row in wave, window arrays)]))."""

    z: np.ndarray
    last: np.ndarray
    mean: np.ndarray
    unit: np.ndarray
    seen: np.ndarray
    outside: np.ndarray
    windows: list[list[np.ndarray]] = field(default_factory=list)
    chunks: list[tuple[np.ndarray, list[tuple[int, dict[str, np.ndarray]]]]] = field(
        default_factory=list)


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
        # Fused: one kernel per step instead of a handful of ops per parameter (the model is
        # small, so a training step is mostly call overhead: 13 % less per step).
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                          fused=True)
        self._pending: list[tuple[int, dict[str, np.ndarray]]] = []
        self.events_processed = 0
        self.train_steps = 0
        self.last_train_loss = float("nan")
        # Admission token bucket, refilled per event (not per second: a replay must admit
        # exactly what the daemon admitted).
        self._burst = config.admission_burst or config.max_streams
        self._tokens = float(self._burst)
        self._tokens_at = 0
        # Since the last checkpoint: slots whose state changed, streams evicted.
        self.dirty: set[int] = set()
        self.evicted: list[str] = []

    # -- public ------------------------------------------------------------------------

    def process(self, events: Sequence[Event]) -> BatchResult:
        n, d = len(events), self.config.max_metrics
        result = BatchResult(
            rejected=[None] * n, score=np.zeros(n), raw_score=np.zeros(n),
            error=np.full(n, np.nan),
            alert=np.zeros(n, dtype=bool), threshold=np.zeros(n), warming=np.zeros(n, bool),
            expected=np.full((n, d), np.nan), actual=np.full((n, d), np.nan),
            contribution=np.full((n, d), np.nan), metric_names=[()] * n)
        slots, segment, wave = self._plan(events, result)
        accepted = np.flatnonzero(slots >= 0)
        if accepted.size == 0:
            return result
        ts = np.array([events[i].ts for i in accepted], dtype=np.float64)
        ts_all = np.zeros(n)
        ts_all[accepted] = ts
        order = accepted[np.lexsort((accepted, wave[accepted], segment[accepted]))]
        seq0 = self.events_processed
        seg_sorted = segment[order]
        for seg_idx in np.split(order, np.flatnonzero(np.diff(seg_sorted)) + 1):
            groups = np.split(seg_idx, np.flatnonzero(np.diff(wave[seg_idx])) + 1)
            self._step_segment(groups, slots, ts_all, seq0, result)
            # The plan cut this segment exactly where train_batch windows became ready.
            if len(self._pending) >= self.config.train_batch:
                self._train_step()
        self.events_processed += n
        return result

    @property
    def model_version(self) -> str:
        cfg = self.config
        kind = "bilstm-ae" if cfg.bidirectional else "lstm-ae"
        return f"{kind}/{__version__}/h{cfg.hidden_size}-w{cfg.window}/{self.weights_digest}"

    def _load_weights(self, path: str) -> None:
        loaded = load_model(Path(path))
        if loaded.shape != self.config.shape:
            raise ValueError(f"{path}: the model's shape {loaded.shape} does not match the "
                             f"settings {self.config.shape}")
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.weights.items()})
        self.weights_digest = loaded.digest

    def slot_of(self, stream: str) -> int | None:
        return self.arena.slot(stream)

    # -- checkpoint and restore ------------------------------------------------------------

    def stream_state(self, slot: int) -> StreamState:
        arena = self.arena
        stream = arena.stream_ids[slot]
        if stream is None:
            raise KeyError(f"slot {slot} holds no stream")
        return StreamState(stream, arena.metric_names[slot], arena.row(slot))

    def shared_state(self) -> SharedState:
        """Everything that is not per stream: weights, optimiser, pending windows, counters."""
        arrays = {f"w/{k}": v.detach().numpy().copy()
                  for k, v in self.model.state_dict().items()}
        for i, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                arrays[f"opt/{i}/{name}"] = value.detach().numpy().copy()
        for j, (seq, sample) in enumerate(self._pending):
            arrays[f"pending/{j}/seq"] = np.array(seq, dtype=np.int64)
            for name, value in sample.items():
                arrays[f"pending/{j}/{name}"] = value
        meta = {"events_processed": self.events_processed, "train_steps": self.train_steps,
                # JSON has no NaN: an engine that has not trained yet stores None.
                "last_train_loss": (self.last_train_loss
                                    if math.isfinite(self.last_train_loss) else None),
                "tokens": self._tokens,
                "tokens_at": self._tokens_at, "pending": len(self._pending),
                "weights_digest": self.weights_digest}
        return SharedState(arrays, meta)

    def restore(self, shared: SharedState | None, streams: Iterable[StreamState]) -> None:
        """Load a checkpoint into this fresh engine: it then continues exactly where the
        engine that wrote the checkpoint stood."""
        if self.events_processed or len(self.arena):
            raise RuntimeError("restore needs a fresh engine")
        for st in streams:
            self.arena.put(st.stream, st.metric_names, st.row)
        if shared is None:
            return
        a, meta = shared.arrays, shared.meta
        self.model.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in a.items()
                                    if k.startswith("w/")})
        opt = self.optimizer.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in a.items():
            if key.startswith("opt/"):
                _, i, name = key.split("/", 2)
                state.setdefault(int(i), {})[name] = torch.from_numpy(value.copy())
        self.optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
        self._pending = []
        for j in range(int(meta["pending"])):
            prefix = f"pending/{j}/"
            sample = {k[len(prefix):]: v for k, v in a.items()
                      if k.startswith(prefix) and k != prefix + "seq"}
            self._pending.append((int(a[prefix + "seq"]), sample))
        self.events_processed = int(meta["events_processed"])
        self.train_steps = int(meta["train_steps"])
        loss = meta["last_train_loss"]
        self.last_train_loss = float("nan") if loss is None else float(loss)
        self._tokens, self._tokens_at = float(meta["tokens"]), int(meta["tokens_at"])
        self.weights_digest = str(meta["weights_digest"])

    # -- batch planning ----------------------------------------------------------------

    def _plan(self, events: Sequence[Event], result: BatchResult
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Slot, segment and wave of every event; fills result.actual and rejections."""
        known = self.arena.slots_of([ev.stream for ev in events])
        if known.size and known.min() >= 0:
            return self._plan_known(events, known, result)
        return self._plan_admitting(events, result)

    def _plan_known(self, events: Sequence[Event], slots: np.ndarray, result: BatchResult
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_plan` of a batch whose streams all have slots, in array operations: admission
        (and so eviction) is what needs the event-by-event walk of `_plan_admitting`."""
        cfg, arena = self.config, self.arena
        n, k, seq0 = len(events), cfg.window, self.events_processed
        sets, names_of = arena.metric_sets, arena.metric_names
        for i in [i for i, ev in enumerate(events)
                  if not ev.metrics.keys() <= sets[slots[i]]]:
            result.rejected[i] = self._unknown_metrics(events[i], int(slots[i]))
            slots[i] = -1
        ok = np.flatnonzero(slots >= 0)
        segment = np.zeros(n, dtype=np.int64)
        wave = np.zeros(n, dtype=np.int64)
        if ok.size == 0:
            return slots, segment, wave
        s = slots[ok]
        names = [names_of[slot] for slot in s.tolist()]
        width = np.fromiter(map(len, names), dtype=np.int64, count=ok.size)
        flat = np.array([v for i, nm in zip(ok.tolist(), names, strict=True)
                         for v in map(events[i].metrics.get, nm)], dtype=np.float64)
        rows = np.repeat(ok, width)
        cols = np.arange(rows.size) - np.repeat(np.cumsum(width) - width, width)
        result.actual[rows, cols] = flat  # a metric missing from an event (None) is NaN
        for i, nm in zip(ok.tolist(), names, strict=True):
            result.metric_names[i] = nm
        # Newest event of each slot: last_seq and the dirty set.
        last, at = np.unique(s[::-1], return_index=True)
        arena.arrays["last_seq"][last] = seq0 + ok[ok.size - 1 - at]
        self.dirty.update(last.tolist())
        # Windows completed by each event, hence where the training batches cut segments.
        occurrence = _occurrence(s)
        done_after = arena.arrays["events_seen"][s] + occurrence + 1
        completes = (arena.arrays["chunk_pos"][s] + occurrence + 1) % k == 0
        if cfg.learn:
            ready = np.cumsum(completes & (done_after >= 2 * k))
            before = np.concatenate(([0], ready[:-1]))
            seg = (len(self._pending) + before) // cfg.train_batch
        else:
            seg = np.zeros(ok.size, dtype=np.int64)
        segment[ok] = seg
        wave[ok] = _occurrence(s, seg)
        return slots, segment, wave

    def _plan_admitting(self, events: Sequence[Event], result: BatchResult
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_plan` event by event, admitting (and evicting) streams in event order."""
        cfg, arena = self.config, self.arena
        n = len(events)
        slots = np.full(n, -1, dtype=np.int64)
        segment = np.zeros(n, dtype=np.int64)
        wave = np.zeros(n, dtype=np.int64)
        k = cfg.window
        chunk_pos, seen = arena.arrays["chunk_pos"], arena.arrays["events_seen"]
        last_seq = arena.arrays["last_seq"]
        seq0 = self.events_processed
        # slot -> [chunk position, events seen, next wave, segment of that wave counter]
        local: dict[int, list[int]] = {}
        pending, current = len(self._pending), 0
        actual = result.actual
        for i, ev in enumerate(events):
            slot = arena.slot(ev.stream)
            if slot is None:
                slot = self._admit(ev, result, i, seq0 + i)
                if slot is None:
                    continue
                # Admission may have grown (reallocated) the arena.
                chunk_pos, seen = arena.arrays["chunk_pos"], arena.arrays["events_seen"]
                last_seq = arena.arrays["last_seq"]
            elif not ev.metrics.keys() <= arena.metric_sets[slot]:
                result.rejected[i] = self._unknown_metrics(ev, slot)
                continue
            last_seq[slot] = seq0 + i
            self.dirty.add(slot)
            names = arena.metric_names[slot]
            for j, name in enumerate(names):
                actual[i, j] = ev.metrics.get(name, math.nan)
            result.metric_names[i] = names
            st = local.get(slot)
            if st is None:
                st = local[slot] = [int(chunk_pos[slot]), int(seen[slot]), 0, current]
            if st[3] != current:
                st[2], st[3] = 0, current
            slots[i], segment[i], wave[i] = slot, current, st[2]
            st[2] += 1
            st[1] += 1
            st[0] += 1
            if st[0] == k:
                st[0] = 0
                if cfg.learn and st[1] >= 2 * k:
                    pending += 1
                    if pending >= cfg.train_batch:
                        pending, current = 0, current + 1
        return slots, segment, wave

    def _unknown_metrics(self, ev: Event, slot: int) -> str:
        """Why an event naming metrics its stream does not have is rejected."""
        extra = sorted(set(ev.metrics) - self.arena.metric_sets[slot])
        return (f"stream {ev.stream!r}: unknown metrics {extra}; its metrics are "
                f"{list(self.arena.metric_names[slot])}")

    def _admit(self, ev: Event, result: BatchResult, i: int, seq: int) -> int | None:
        cfg, arena = self.config, self.arena
        names = tuple(ev.metrics)
        if not names:
            result.rejected[i] = f"stream {ev.stream!r}: event has no metrics"
            return None
        if len(names) > cfg.max_metrics:
            result.rejected[i] = (f"stream {ev.stream!r}: {len(names)} metrics, more than "
                                  f"DETECTOR_MODEL_MAX_METRICS={cfg.max_metrics}")
            return None
        if any(math.isnan(v) for v in ev.metrics.values()):
            result.rejected[i] = (f"stream {ev.stream!r}: the first event of a stream must "
                                  "carry every metric")
            return None
        self._tokens = min(float(self._burst),
                           self._tokens + cfg.admission_rate * (seq - self._tokens_at))
        self._tokens_at = seq
        if self._tokens < 1.0:
            result.rejected[i] = (f"stream {ev.stream!r}: new-stream admission limit reached "
                                  f"(DETECTOR_STATE_ADMISSION_RATE={cfg.admission_rate} per "
                                  f"event after a burst of {self._burst})")
            return None
        if arena.is_full and not self._evict_least_recent():
            result.rejected[i] = (f"stream {ev.stream!r}: stream limit reached by this batch "
                                  f"alone (DETECTOR_STATE_MAX_STREAMS={cfg.max_streams})")
            return None
        self._tokens -= 1.0
        thr = policy.threshold_for(ev.stream, cfg.threshold, cfg.threshold_overrides)
        slot = arena.add(ev.stream, names, thr)
        # Streams admitted together (a fleet at start-up, every stream reporting at one
        # cadence) would complete their windows on the same events forever, and a whole
        # fleet's training steps would fall into one batch: a latency spike every `window`
        # steps. Each stream's windows start at its admission's place in the event sequence.
        arena.arrays["chunk_pos"][slot] = seq % cfg.window
        return slot

    def _evict_least_recent(self) -> bool:
        """Free the slot of the stream seen least recently, unless it is in this batch."""
        arena = self.arena
        live = arena.live_slots()
        slot = int(live[np.argmin(arena.arrays["last_seq"][live])])
        if arena.arrays["last_seq"][slot] >= self.events_processed:
            return False
        stream = arena.stream_ids[slot]
        assert stream is not None
        arena.remove(stream)
        self.dirty.discard(slot)
        self.evicted.append(stream)
        return True

    # -- one segment of waves ------------------------------------------------------------

    def _step_segment(self, groups: list[np.ndarray], slots: np.ndarray, ts_all: np.ndarray,
                      seq0: int, result: BatchResult) -> None:
        """Step the waves of one segment (the weights are fixed within it) in three passes:
        the normaliser, ranges and windows (which depend on the data alone), the model, then
        calibration and alert policy. A pass walks the waves in order where state carries
        from one wave to the next and works on the whole segment at once where it does not;
        every event goes through the operations of a wave-by-wave step, bit for bit."""
        cfg = self.config
        rows = np.concatenate(groups)
        s_all = slots[rows]
        offsets = np.cumsum([0] + [g.size for g in groups]).tolist()
        bounds = list(itertools.pairwise(offsets))
        x = result.actual[rows]
        y = normalizer.compress(x, cfg.log_transform)
        valid = (self.arena.arrays["metric_mask"][s_all] > 0) & ~np.isnan(y)
        y = np.where(valid, y, 0.0)
        ts = ts_all[rows]
        tf = time_features(ts)
        obs = self._observe(bounds, s_all, ts, x, y, valid, tf)
        forecast = self._forecast(bounds, s_all, rows + seq0, obs, valid, tf)
        residual = np.where(valid, obs.z - forecast, 0.0)
        n_valid = valid.sum(axis=1)
        result.error[rows] = np.where(n_valid > 0, (residual * residual).sum(axis=1)
                                      / np.maximum(n_valid, 1), np.nan)
        result.expected[rows] = normalizer.decompress(
            normalizer.denormalise(forecast, obs.mean, obs.unit), cfg.log_transform)
        self._calibrate(bounds, s_all, rows, obs, residual, valid, n_valid, result)

    def _observe(self, bounds: list[tuple[int, int]], s_all: np.ndarray, ts: np.ndarray,
                 x: np.ndarray, y: np.ndarray, valid: np.ndarray, tf: np.ndarray
                 ) -> _Observed:
        """Pass 1, wave by wave: normalise each event against its stream's statistics, then
        take it into the statistics, ranges, seasonal steps and windows."""
        cfg, a = self.config, self.arena.arrays
        k, n, d = cfg.window, s_all.size, cfg.max_metrics
        obs = _Observed(z=np.empty((n, d), np.float32), last=np.empty((n, d), np.float32),
                        mean=np.empty((n, d)), unit=np.empty((n, d)),
                        seen=np.empty(n, np.int64), outside=np.zeros(n, bool))
        valid32 = valid.astype(np.float32)
        spatial, seasonal = cfg.spatial_margin > 0, cfg.seasonal_buckets > 0
        buckets = self._bucket(ts) if seasonal else ts
        for lo, hi in bounds:
            s, v, yw = s_all[lo:hi], valid[lo:hi], y[lo:hi]
            mean, var, count = a["norm_mean"][s], a["norm_var"][s], a["norm_count"][s]
            unit = normalizer.scale(mean, var)
            z = normalizer.normalise(yw, v, mean, unit, count).astype(np.float32)
            # Persistence prior in today's scale: the stored window was normalised with the
            # statistics of its own time, which drift fast while a stream is young.
            mask = a["metric_mask"][s] > 0
            last_y = a["last_y"][s]
            last_z = normalizer.normalise(last_y, mask & (count > 0), mean, unit, count)
            if seasonal:
                prior = self._seasonal_step(s, buckets[lo:hi], mask, unit)
                last_z = last_z + prior
            obs.z[lo:hi], obs.last[lo:hi], obs.mean[lo:hi], obs.unit[lo:hi] = (
                z, last_z, mean, unit)
            if cfg.bidirectional:  # the window the encoder reads: the last K inputs seen
                obs.windows.append([a[name][s, k:] for name in
                                    ("hist", "hist_valid", "hist_time")])
            if spatial:
                obs.outside[lo:hi] = self._outside_range(s, x[lo:hi], v)
            if seasonal:
                self._learn_seasonal_step(s, buckets[lo:hi], yw, v & (count > 0))
            nm, nv, nc = normalizer.update(yw, v, mean, var, count, cfg.normalizer_halflife)
            a["norm_mean"][s], a["norm_var"][s], a["norm_count"][s] = nm, nv, nc
            a["last_y"][s] = np.where(v, yw, last_y)
            new = [("hist", z), ("hist_valid", valid32[lo:hi]), ("hist_time", tf[lo:hi])]
            if seasonal:  # without seasons the prior stays 0
                new.append(("hist_prior", prior.astype(np.float32)))
            for name, value in new:
                arr = a[name]
                arr[s, :-1] = arr[s, 1:]
                arr[s, -1] = value
            seen = a["events_seen"][s]
            obs.seen[lo:hi] = seen
            seen = seen + 1
            a["events_seen"][s] = seen
            pos = a["chunk_pos"][s] + 1
            done = pos == k
            a["chunk_pos"][s] = np.where(done, 0, pos)
            # A window completed: training takes it as it stands now, with the state at its
            # start, which the model pass adds.
            ready = np.flatnonzero(done & (seen >= 2 * k)) if cfg.learn else []
            obs.chunks.append((s[done], [
                (int(j), {name: a[name][s[j]].copy() for name in
                          ("hist", "hist_valid", "hist_time", "hist_prior")})
                for j in ready]))
        return obs

    def _forecast(self, bounds: list[tuple[int, int]], s_all: np.ndarray, seqs: np.ndarray,
                  obs: _Observed, valid: np.ndarray, tf: np.ndarray) -> np.ndarray:
        """Pass 2, wave by wave: each event's forecast from its stream's carried state, then
        the state steps over the event. The bidirectional window codes of the whole segment
        are one call (the encoder's rows do not depend on each other)."""
        a, model = self.arena.arrays, self.model
        valid32 = valid.astype(np.float32)
        x = torch.from_numpy(np.concatenate((obs.z * valid32, valid32, tf), axis=1))
        h_all, c_all = a["h"], a["c"]
        sizes = [hi - lo for lo, hi in bounds]
        outs = []
        with torch.inference_mode():
            context = torch.from_numpy(tf)
            if self.config.bidirectional:
                code = model.encode_window(*(torch.from_numpy(np.concatenate(parts))
                                             for parts in zip(*obs.windows, strict=True)))
                context = torch.cat((code, context), dim=1)
            for (lo, hi), xw, cw, (done, ready) in zip(bounds, x.split(sizes),
                                                       context.split(sizes), obs.chunks,
                                                       strict=True):
                s = s_all[lo:hi]
                out, h, c = model.forecast_and_step(torch.from_numpy(h_all[s]),
                                                    torch.from_numpy(c_all[s]), xw, cw)
                h_all[s], c_all[s] = h.numpy(), c.numpy()
                outs.append(out)
                for j, sample in ready:
                    slot = s[j]
                    self._pending.append((int(seqs[lo + j]), {
                        "h0": a["h0"][slot].copy(), "c0": a["c0"][slot].copy(), **sample}))
                if done.size:
                    a["h0"][done], a["c0"][done] = h_all[done], c_all[done]
            forecast = torch.cat(outs) + torch.from_numpy(obs.last)
        return forecast.numpy().astype(np.float64)

    def _calibrate(self, bounds: list[tuple[int, int]], s_all: np.ndarray, rows: np.ndarray,
                   obs: _Observed, residual: np.ndarray, valid: np.ndarray,
                   n_valid: np.ndarray, result: BatchResult) -> None:
        """Pass 3, wave by wave: calibrated score, calibration update, alert decision."""
        cfg, a = self.config, self.arena.arrays
        n, halflife = s_all.size, cfg.calibration_halflife
        warming = obs.seen < cfg.warmup_events
        # The first events are normalised against a handful of values and forecast from an
        # empty state; their residuals say nothing about the stream, so the calibration
        # history starts halfway through the warm-up.
        learn = obs.seen >= max(2 * cfg.window, cfg.warmup_events // 2)
        residual_y = residual * obs.unit
        min_var = normalizer.resolution(obs.mean) ** 2
        prior_var = obs.unit ** 2
        thresholds = a["threshold"][s_all]
        raw, published, alert = np.empty(n), np.empty(n), np.empty(n, bool)
        squares = np.empty(residual.shape)
        for lo, hi in bounds:
            s, r, v, mv, lw, warm = (s_all[lo:hi], residual_y[lo:hi], valid[lo:hi],
                                     min_var[lo:hi], learn[lo:hi], warming[lo:hi])
            res_var, res_count = a["res_var"][s], a["res_count"][s]
            squares[lo:hi] = calibrator.standardised_squares(r, v, res_var, mv)
            worst = calibrator.worst_of(squares[lo:hi])
            history = a["surprise_hist"][s]
            score = calibrator.score(worst, n_valid[lo:hi], history)
            if cfg.spatial_margin > 0:
                score = np.where(obs.outside[lo:hi], 1.0, score)
            score = np.where(warm, 0.0, score)
            rv2, rc2 = calibrator.update(r, v, res_var, res_count, mv, prior_var[lo:hi],
                                         halflife)
            a["res_var"][s] = np.where(lw[:, None], rv2, res_var)
            a["res_count"][s] = np.where(lw, rc2, res_count)
            a["surprise_hist"][s] = calibrator.remember(history, worst, lw, halflife)
            raw[lo:hi] = score
            published[lo:hi], alert[lo:hi], a["peak"][s], a["peak_age"][s] = policy.decide(
                score, thresholds[lo:hi], a["peak"][s], a["peak_age"][s], warm,
                cfg.cooldown_events)
        result.score[rows], result.raw_score[rows], result.alert[rows] = published, raw, alert
        result.threshold[rows], result.warming[rows] = thresholds, warming
        result.contribution[rows] = calibrator.shares(squares)

    def _bucket(self, ts: np.ndarray) -> np.ndarray:
        n = self.config.seasonal_buckets
        return np.minimum((np.mod(ts, SECONDS_PER_DAY) / SECONDS_PER_DAY * n).astype(np.int64),
                          n - 1)

    def _seasonal_step(self, s: np.ndarray, b: np.ndarray, mask: np.ndarray,
                       unit: np.ndarray) -> np.ndarray:
        """Expected step at time-of-day bucket b, in today's z units (0 without history)."""
        a = self.arena.arrays
        known = (a["season_n"][s, b] >= SEASON_MIN_SEEN)[:, None] & mask
        return np.where(known, a["season"][s, b] / unit, 0.0)

    def _learn_seasonal_step(self, s: np.ndarray, b: np.ndarray, y: np.ndarray,
                             valid: np.ndarray) -> None:
        """Fold this event's step (from the stream's previous value) into its time-of-day
        bucket b."""
        a = self.arena.arrays
        seen_before = valid  # only metrics with a previous value to step from
        step = y - a["last_y"][s]
        n = a["season_n"][s, b] + 1.0
        rate = np.maximum(1.0 / n, SEASON_RATE)[:, None]
        old = a["season"][s, b]
        a["season"][s, b] = np.where(seen_before, old + rate * (step - old), old)
        a["season_n"][s, b] = n

    def _outside_range(self, s: np.ndarray, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Per event: a valid value, or the running mean of the values (half-life
        `spatial_halflife` events), beyond its own range so far by more than the spatial
        margin. The mean catches a sustained shift out of the usual range that no single
        noisy value makes a new extreme. Checked before the ranges take the event in."""
        a, cfg = self.arena.arrays, self.config
        first = np.isnan(a["seen_min"][s])  # no value seen yet: the mean starts at this one
        beyond = _beyond_range(x, valid, a, s, "seen_min", "seen_max", cfg.spatial_margin)
        if cfg.spatial_halflife > 0:
            rate = 1.0 - 0.5 ** (1.0 / cfg.spatial_halflife)
            old = a["smooth"][s]
            mean = np.where(first, x, old + rate * (x - old))
            a["smooth"][s] = np.where(valid, mean, old)
            beyond |= _beyond_range(mean, valid, a, s, "smooth_min", "smooth_max",
                                    cfg.spatial_margin, first)
        return beyond.any(axis=1)

    def _train_step(self) -> None:
        samples = [sample for _, sample in sorted(self._pending, key=lambda p: p[0])]
        self._pending.clear()
        batch = {name: torch.from_numpy(np.stack([smp[name] for smp in samples]))
                 for name in samples[0]}
        self.model.train()
        loss = self.model.window_loss(batch["h0"], batch["c0"], batch["hist"],
                                      batch["hist_valid"], batch["hist_time"],
                                      batch["hist_prior"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.model.eval()
        self.train_steps += 1
        self.last_train_loss = float(loss.detach())


def _beyond_range(x: np.ndarray, valid: np.ndarray, arrays: dict[str, np.ndarray],
                  s: np.ndarray, lo_name: str, hi_name: str, margin: float,
                  reset: np.ndarray | None = None) -> np.ndarray:
    """Per metric: x beyond [lo, hi] (NaN = nothing seen yet, or rows in `reset`) by more
    than margin x (hi - lo); the range then takes the valid values in."""
    lo, hi = arrays[lo_name][s], arrays[hi_name][s]
    if reset is not None:
        lo, hi = np.where(reset, np.nan, lo), np.where(reset, np.nan, hi)
    width = margin * (hi - lo)
    beyond = valid & (hi > lo) & ((x > hi + width) | (x < lo - width))
    xv = np.where(valid, x, np.nan)
    arrays[lo_name][s], arrays[hi_name][s] = np.fmin(lo, xv), np.fmax(hi, xv)
    return beyond
