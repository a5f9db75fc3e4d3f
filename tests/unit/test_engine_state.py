"""Engine state: checkpoint round trip, least-recently-seen eviction, admission limit."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from detector.engine import Engine, EngineConfig, Event, SharedState, StreamState
from detector.state import codec
from detector.state.codec import (
    decode_shared,
    decode_stream,
    encode_shared,
    encode_stream,
    load_records,
)
from tests.unit.factories import T0, traffic

FAST = EngineConfig(hidden_size=16, window=4, train_batch=8, warmup_events=32)


def checkpoint(engine: Engine) -> tuple[bytes, list[bytes]]:
    streams = [encode_stream(engine.stream_state(stream), part.layout)
               for part in engine.rows(None) for stream in part.streams]
    return encode_shared(engine.shared_state(), engine.config.shape), streams


def restored(config: EngineConfig, shared: bytes, streams: list[bytes]) -> Engine:
    engine = Engine(config)
    load_records(engine, shared, streams)
    return engine


def test_records_of_another_layout_are_refused() -> None:
    engine = Engine(FAST)
    engine.process(traffic(n_streams=1, n_steps=20))
    shared, (stream,) = checkpoint(engine)
    bigger = Engine(dataclasses.replace(FAST, hidden_size=32))
    with pytest.raises(ValueError, match="layout"):
        decode_stream(stream, bigger.layout_for)
    with pytest.raises(ValueError, match="shape"):
        decode_shared(shared, bigger.config.shape)
    with pytest.raises(ValueError):
        decode_stream(stream[:-3], engine.layout_for)
    with pytest.raises(ValueError):
        decode_shared(b"garbage", FAST.shape)


def test_restore_needs_a_fresh_engine() -> None:
    engine = Engine(FAST)
    engine.process(traffic(n_streams=1, n_steps=5))
    with pytest.raises(RuntimeError):
        engine.restore(SharedState({}, {}), [])


def one(stream: str, i: int) -> Event:
    return Event(stream, T0 + 300.0 * i, {"x": 1.0 + (i % 3)})


def test_a_full_arena_evicts_the_stream_seen_least_recently() -> None:
    engine = Engine(dataclasses.replace(FAST, max_streams=3, initial_capacity=2,
                                        admission_burst=10))
    engine.process([one("a", 0), one("b", 0), one("c", 0)])
    engine.process([one("a", 1), one("c", 1)])           # b is now the least recent
    engine.take_changes()
    result = engine.process([one("d", 0)])
    assert result.rejected == [None] and result.evicted == 1
    slots, evicted = engine.take_changes()
    assert evicted == ["b"]
    assert engine.slot_of("b") is None and engine.streams == 3
    # d took b's slot, starting from a clean row, and is dirty; b's old slot is not reused
    # by anything stale.
    slot = engine.slot_of("d")
    assert slots[4].tolist() == [slot]
    assert engine.arena_of("d").arrays["events_seen"][slot] == 1
    # b comes back as a new stream and evicts the next least recent (a).
    engine.process([one("b", 2)])
    assert engine.take_changes()[1] == ["a"]


def test_eviction_within_one_batch_is_what_one_event_at_a_time_gives() -> None:
    config = dataclasses.replace(FAST, max_streams=2, admission_burst=10)
    events = [one("a", 0), one("b", 0), one("c", 0), one("a", 1), one("c", 1)]
    batched, single = Engine(config), Engine(config)
    whole = batched.process(events)
    apart = [single.process([event]) for event in events]
    assert whole.rejected == [r.rejected[0] for r in apart] == [None] * 5
    assert whole.evicted == sum(r.evicted for r in apart) == 2
    assert batched.take_changes()[1] == single.take_changes()[1] == ["a", "b"]
    np.testing.assert_array_equal(whole.raw_score,
                                  np.concatenate([r.raw_score for r in apart]))


def test_new_streams_beyond_the_burst_are_admitted_at_the_rate_per_event() -> None:
    engine = Engine(dataclasses.replace(FAST, admission_burst=2, admission_rate=0.25))
    flood = [one(f"s{i}", 0) for i in range(10)]
    result = engine.process(flood)
    admitted = [i for i, r in enumerate(result.rejected) if r is None]
    # Two from the burst (the refill starts with the second event), then one per four events.
    assert admitted == [0, 1, 4, 8]
    assert all(r.kind == "admission" and "admission limit" in r.detail
               for r in result.rejected if r is not None)
    # Known streams are never limited.
    assert engine.process([one("s0", 1), one("s1", 1)]).rejected == [None, None]


def test_stream_state_names_the_stream_and_its_metrics() -> None:
    engine = Engine(FAST)
    engine.process([Event("host/eth0", T0, {"bytes": 5.0, "packets": 2.0})])
    state = engine.stream_state("host/eth0")
    assert isinstance(state, StreamState)
    assert state.stream == "host/eth0" and state.metric_names == ("bytes", "packets")
    assert state.row["events_seen"] == 1


def test_an_engine_that_has_not_trained_yet_round_trips() -> None:
    # Its last training loss is NaN, which JSON cannot hold.
    engine = Engine(FAST)
    engine.process(traffic(n_streams=2, n_steps=3))
    assert engine.train_steps == 0
    shared, streams = checkpoint(engine)
    copy = restored(FAST, shared, streams)
    assert math.isnan(copy.last_train_loss) and copy.streams == 2


# Long enough for every field to hold something: the tail histograms fill from event 256 on,
# the range rule trusts its ranges after 30 hours (step 360), host-0 alerts only up.
LIVED = dataclasses.replace(FAST, spatial_warmup_s=15 * 3_600.0, directions={"host-0/*": "up"})
NEW_FIELDS = ("surprise_hist", "level_hist", "relation_hist", "relation", "direction",
              "first_ts")


def test_every_field_of_every_stream_survives_a_checkpoint_round_trip() -> None:
    engine = Engine(LIVED)
    engine.process(traffic(n_streams=3, n_steps=300, spike=(1, 280, 6.0)))
    copy = restored(LIVED, *checkpoint(engine))
    for stream in ("host-0/eth0", "host-1/eth0", "host-2/eth0"):
        want = engine.stream_state(stream).row
        got = copy.stream_state(stream).row
        assert set(got) == set(want) == set(engine.arena_of(stream).specs)
        for name, value in want.items():
            assert got[name].dtype == value.dtype, name
            np.testing.assert_array_equal(got[name], value, err_msg=f"{stream} {name}")
    # ... and the fields the quality defaults added hold real state, not zeros.
    row = engine.stream_state("host-0/eth0").row
    assert all(row[name].sum() > 0 for name in ("surprise_hist", "level_hist", "relation_hist"))
    assert row["relation"][:2, :2].min() > 0.5          # bytes_in and bytes_out move together
    assert row["direction"].tolist()[:2] == [1, 1] and row["first_ts"] == T0


def creeping_events() -> list[Event]:
    events = traffic(n_streams=3, n_steps=400, spike=(2, 350, 6.0))
    for t in range(310, 346):  # host-1 creeps 50% above its usual peak before step 360
        e = events[3 * t + 1]
        factor = 1 + 0.5 * min(1.0, (t - 310) / 12)
        events[3 * t + 1] = Event(e.stream, e.ts, {k: v * factor for k, v in e.metrics.items()})
    return events


def after_restore(config: EngineConfig, zeroed: str | None = None) -> tuple[Engine, Engine]:
    """An engine run through step 300 of `creeping_events`, and one restored from its
    checkpoint (with one field zeroed in every stream's row, if named)."""
    events, cut = creeping_events(), 3 * 300
    original = Engine(config)
    original.process(events[:cut])
    shared, streams = checkpoint(original)
    copy = Engine(config)
    copy.restore(decode_shared(shared, config.shape), [
        st if zeroed is None else
        dataclasses.replace(st, row={**st.row, zeroed: np.zeros_like(st.row[zeroed])})
        for st in (decode_stream(s, copy.layout_for) for s in streams)])
    return original, copy


def test_a_restored_engine_judges_by_the_restored_tail_and_range() -> None:
    events, cut = creeping_events(), 3 * 300
    original, copy = after_restore(LIVED)
    want, got = original.process(events[cut:]), copy.process(events[cut:])
    np.testing.assert_array_equal(got.raw_score, want.raw_score)
    np.testing.assert_array_equal(got.alert, want.alert)
    assert want.alert[(350 - 300) * 3 + 2]
    # The comparison sees each new field: an engine that lost one scores differently. The
    # time of a stream's first event matters while the stream is young: restored at 25 hours,
    # trusted from 27.
    for name in NEW_FIELDS:
        config = (dataclasses.replace(LIVED, spatial_warmup_s=27 * 3_600.0)
                  if name == "first_ts" else LIVED)
        reference = after_restore(config)[0].process(events[cut:]).raw_score
        lost = after_restore(config, zeroed=name)[1].process(events[cut:]).raw_score
        assert not np.array_equal(lost, reference), f"{name} is never read"


def test_a_wide_stream_takes_the_room_of_the_narrow_rows_its_state_would_hold() -> None:
    engine = Engine(dataclasses.replace(FAST, max_streams=20, admission_burst=100))
    engine.process([one(f"n{i}", 0) for i in range(20)])        # 20 one-metric streams
    rows = engine.admission.row_bytes
    budget = engine.admission.budget_bytes                      # 20 rows of 4 metrics
    wide = Event("host", T0, {f"m{j}": float(j) for j in range(64)})
    result = engine.process([wide])
    # n0, n1, ... are evicted, least recent first, until the 64-metric row fits the budget.
    room = (budget - rows[64]) // rows[4]       # the one-metric streams live in the 4-lane
    assert result.rejected == [None] and result.evicted == 20 - room
    assert engine.take_changes()[1] == [f"n{i}" for i in range(20 - room)]
    assert engine.streams == room + 1 and engine.arena_of("host").shape.max_metrics == 64
    # A stream whose row alone is over the budget is refused, saying why.
    tiny = Engine(dataclasses.replace(FAST, max_streams=1))
    (why,) = tiny.process([wide]).rejected
    assert why is not None and why.kind == "admission" and "bytes of state" in why.detail


def test_an_engine_record_from_before_the_lanes_is_refused_not_misread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    old = SharedState({"w/x": np.zeros(1)}, {"events_processed": 5, "pending": 0})
    monkeypatch.setattr(codec, "SHARED_VERSION", 1)  # as written before the lanes
    record = encode_shared(old, FAST.shape)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="version 1 is not readable"):
        decode_shared(record, FAST.shape)


def test_pending_windows_are_one_array_per_field_and_a_version_2_record_still_restores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = traffic(n_streams=3, n_steps=90)
    cut = 206  # six training windows pending
    original = Engine(FAST)
    original.process(events[:cut])
    shared = original.shared_state()
    (lane,) = original.lanes.values()
    waiting = len(lane.trainer.pending)
    assert waiting > 1
    prefix = f"{lane.width}/pending/"
    stacked = {k[len(prefix):]: v for k, v in shared.arrays.items() if k.startswith(prefix)}
    assert stacked["seq"].shape == (waiting,) and stacked["hist"].shape[0] == waiting
    # The same state as version 2 wrote it: an array per window and field.
    old = {k: v for k, v in shared.arrays.items() if not k.startswith(prefix)}
    for name, rows in stacked.items():
        for j in range(waiting):
            old[f"{prefix}{j}/{name}"] = rows[j]
    monkeypatch.setattr(codec, "SHARED_VERSION", 2)
    old_record = encode_shared(SharedState(old, shared.meta), FAST.shape)
    monkeypatch.undo()
    _, streams = checkpoint(original)
    new_record = encode_shared(shared, FAST.shape)
    expected = original.process(events[cut:]).score
    for record in (new_record, old_record):
        engine = restored(FAST, record, streams)
        np.testing.assert_array_equal(engine.process(events[cut:]).score, expected)
