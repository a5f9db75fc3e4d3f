"""Restore reads the changelog as of the committed offset: last record per key, tombstones
delete, records of a checkpoint whose commit never happened are ignored. (The integration twin:
tests/reliability, against the real broker.)"""

from __future__ import annotations

from types import SimpleNamespace

from detector.state.changelog import (
    ENGINE_KEY,
    OFFSET_HEADER,
    RESET_KEY,
    PartitionState,
    _apply,
    reset_marker,
    stream_key,
)


def record(key: bytes, value: bytes | None, offset: int | None) -> SimpleNamespace:
    headers = [] if offset is None else [(OFFSET_HEADER, str(offset).encode())]
    return SimpleNamespace(key=key, value=value, headers=headers)


def test_restore_keeps_the_last_record_per_key_up_to_the_committed_offset() -> None:
    state = PartitionState()
    _apply(state, [
        record(stream_key("a"), b"a@100", 100),
        record(ENGINE_KEY, b"engine@100", 100),
        record(stream_key("b"), b"b@100", 100),
        record(stream_key("a"), b"a@200", 200),
        record(stream_key("b"), None, 200),            # b evicted
        record(ENGINE_KEY, b"engine@200", 200),
        record(stream_key("c"), b"c@300", 300),         # written, but 300 never committed
        record(stream_key("a"), b"a@300", 300),
        record(ENGINE_KEY, b"engine@300", 300),
        record(stream_key("d"), b"untagged", None),     # not ours: no offset tag
    ], committed=200)
    assert state.engine == b"engine@200"
    assert state.streams == {"a": b"a@200"}
    assert state.records_read == 10


def test_a_stream_evicted_and_seen_again_is_restored_with_its_new_state() -> None:
    state = PartitionState()
    _apply(state, [record(stream_key("a"), b"old", 10), record(stream_key("a"), None, 20),
                   record(stream_key("a"), b"new", 30)], committed=30)
    assert state.streams == {"a": b"new"}


def test_a_late_record_of_the_previous_owner_does_not_overwrite_the_new_owners() -> None:
    state = PartitionState()
    _apply(state, [record(stream_key("a"), b"new owner@500", 500),
                   record(ENGINE_KEY, b"new owner@500", 500),
                   record(stream_key("a"), b"old owner@400", 400),   # arrived late
                   record(ENGINE_KEY, b"old owner@400", 400)], committed=500)
    assert state.streams == {"a": b"new owner@500"}
    assert state.engine == b"new owner@500"


def test_a_reset_marker_hides_every_earlier_record_of_the_partition() -> None:
    state = PartitionState()
    _apply(state, [record(stream_key("old"), b"old log@900", 900),
                   record(ENGINE_KEY, b"engine of the old log@900", 900),
                   record(RESET_KEY, reset_marker(0), 0),           # the log started again
                   record(stream_key("new"), b"new log@40", 40),
                   record(ENGINE_KEY, b"engine of the new log@40", 40)], committed=950)
    assert state.streams == {"new": b"new log@40"}
    assert state.engine == b"engine of the new log@40"
