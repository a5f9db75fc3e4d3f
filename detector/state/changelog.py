"""The changelog topic: state records tagged with the input offset they reflect, and restore.

Changelog partition p holds the state of input partition p: one record per stream (key
`s/<stream id>`), a tombstone when a stream is evicted, and one record with the engine's shared
state (key `e/engine`). Every record carries the header `source-offset`: the next input offset
of partition p once that state was reached. Restore keeps, per key, the record with the
highest tag at or below the group's committed offset: records written by a checkpoint whose
offset commit never happened are ignored, and so are late records of a member that lost the
partition. Restore picks per key itself, so it is right whether or not the broker has
compacted the topic yet.

When the input's offsets went backwards (the broker lost its log, the topic was deleted and
created again) the partition starts afresh and its checkpoints first write a reset marker
(key `e/reset`): restore discards every record before it in the changelog, since those
describe an input log that no longer exists and their offsets would be mistaken for the new
log's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from detector.errors import RestoreTimeoutError, SettingsError
from detector.kafka_clients import client_config
from detector.settings import KafkaSettings

OFFSET_HEADER = "source-offset"
ENGINE_KEY = b"e/engine"
RESET_KEY = b"e/reset"
STREAM_PREFIX = b"s/"
# State records can be larger than Kafka's 1 MB default (a big model's weights and
# optimiser moments): the topic and the producer allow this much.
MAX_RECORD_BYTES = 16 * 1024 * 1024


def stream_key(stream: str) -> bytes:
    return STREAM_PREFIX + stream.encode()


def reset_marker(offset: int) -> bytes:
    """The value of a reset marker: the input offset the partition started afresh at."""
    return f'{{"reset_from": {int(offset)}}}'.encode()


def send_state(producer: Any, topic: str, partition: int, source_offset: int, key: bytes,
               value: bytes | None) -> Any:
    """One state record (value None = tombstone); returns the send future."""
    return producer.send(topic, key=key, value=value, partition=partition,
                         headers=[(OFFSET_HEADER, str(source_offset).encode())])


@dataclass
class PartitionState:
    """The state of one input partition as of its committed offset, still encoded."""

    engine: bytes | None = None
    streams: dict[str, bytes] = field(default_factory=dict)
    records_read: int = 0
    engine_tag: int = -1
    stream_tags: dict[str, int] = field(default_factory=dict)


def ensure_changelog(k: KafkaSettings, partitions: int) -> None:
    """Create the compacted changelog with `partitions` partitions, or check the one there."""
    admin = KafkaAdminClient(**client_config(k))
    try:
        if k.changelog not in set(admin.list_topics()):
            configs = {"cleanup.policy": "compact", "max.message.bytes": str(MAX_RECORD_BYTES)}
            try:
                admin.create_topics([NewTopic(k.changelog, partitions, k.replication_factor,
                                              topic_configs=configs)])
            except TopicAlreadyExistsError:
                pass
            return
        described = admin.describe_topics([k.changelog])
        have = len(described[0].get("partitions", [])) if described else 0
        if have and have < partitions:
            raise SettingsError(
                f"DETECTOR_KAFKA_CHANGELOG_TOPIC: {k.changelog!r} has {have} partitions, the "
                f"input topic {partitions}; it needs one per input partition")
    finally:
        admin.close()


def read_state(k: KafkaSettings, committed: dict[int, int | None], *, timeout_s: float
               ) -> dict[int, PartitionState]:
    """Per input partition, the state as of its committed offset (empty without a commit)."""
    result = {p: PartitionState() for p in committed}
    wanted = [TopicPartition(k.changelog, p) for p, off in committed.items() if off]
    if not wanted:
        return result
    consumer = KafkaConsumer(**client_config(k), group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest",
                             max_partition_fetch_bytes=MAX_RECORD_BYTES,
                             fetch_max_bytes=4 * MAX_RECORD_BYTES)
    try:
        consumer.assign(wanted)
        consumer.seek_to_beginning(*wanted)
        deadline = time.monotonic() + timeout_s
        remaining = set(wanted)
        while remaining:
            if time.monotonic() > deadline:
                raise RestoreTimeoutError(
                    f"restoring {sorted(tp.partition for tp in remaining)} of {k.changelog!r} "
                    f"took over {timeout_s} s (DETECTOR_STATE_RESTORE_TIMEOUT_S)")
            for tp, records in consumer.poll(timeout_ms=200, max_records=50_000).items():
                _apply(result[tp.partition], records, committed[tp.partition] or 0)
            for tp in list(remaining):
                high = consumer.highwater(tp)
                if high is not None and consumer.position(tp) >= high:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()
    return result


def _apply(state: PartitionState, records: Iterable[Any], committed: int) -> None:
    """Per key, the record with the highest tag at or below `committed` wins (the later one
    of equal tags): a late record of a member that lost the partition carries an older tag
    than the new owner's and cannot overwrite them."""
    for rec in records:
        state.records_read += 1
        raw = dict(rec.headers or ()).get(OFFSET_HEADER)
        if raw is None or int(raw) > committed:
            continue  # not ours, or written by a checkpoint whose commit did not happen
        tag = int(raw)
        if rec.key == RESET_KEY:
            state.engine, state.engine_tag = None, -1
            state.streams.clear()
            state.stream_tags.clear()
        elif rec.key == ENGINE_KEY:
            if tag >= state.engine_tag:
                state.engine, state.engine_tag = rec.value, tag
        elif rec.key is not None and rec.key.startswith(STREAM_PREFIX):
            stream = rec.key[len(STREAM_PREFIX):].decode()
            if tag >= state.stream_tags.get(stream, -1):
                state.stream_tags[stream] = tag
                if rec.value is None:
                    state.streams.pop(stream, None)
                else:
                    state.streams[stream] = rec.value
