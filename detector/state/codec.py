"""Checkpoint codec: a stream's state or an engine's shared state ↔ bytes, versioned, no pickle.

A stream record is `MAGIC, header length, JSON header, raw field bytes`: the header names the
stream, its metrics and a fingerprint of the arena layout (field names, shapes, dtypes), and the
fields follow in layout order, so decoding is a few `frombuffer` calls. A record written under
another layout (the model's size changed between runs) is refused with a reason, never
misread. The shared state (weights, optimiser moments, pending training windows) is an .npz
archive (allow_pickle=False) with a JSON header.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from detector.engine import Engine, SharedState, StreamState

STREAM_MAGIC = b"LDS1"
SHARED_FORMAT = "lstm-detector/engine-state"
SHARED_VERSION = 3  # 3: pending training windows stacked, one array per field
SHARED_READABLE = (2, 3)  # 2: arrays and counters per lane (lanes by width)
_HEADER_LEN = struct.Struct(">I")

Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


@dataclass(frozen=True)
class _Plan:
    """A layout's fingerprint and each field's place in a record body."""

    fingerprint: str
    fields: tuple[tuple[str, np.dtype, tuple[int, ...], int, int], ...]  # name, dtype, shape,
    # count, bytes
    body_bytes: int


def _plan(layout: Layout) -> _Plan:
    known = _PLANS.get(id(layout))
    if known is not None and known[0] is layout:
        return known[1]
    text = ";".join(f"{name}:{shape}:{np.dtype(dtype).str}"
                    for name, (shape, dtype) in layout.items())
    fields = []
    for name, (shape, dtype) in layout.items():
        count = int(np.prod(shape, dtype=np.int64))
        fields.append((name, np.dtype(dtype), shape, count, count * np.dtype(dtype).itemsize))
    plan = _Plan(hashlib.sha256(text.encode()).hexdigest()[:16], tuple(fields),
                 sum(f[4] for f in fields))
    _PLANS[id(layout)] = (layout, plan)
    return plan


# id(layout) -> (layout, plan): an arena's layout lives as long as the arena, and checkpoints
# and restores code thousands of records with it.
_PLANS: dict[int, tuple[Layout, _Plan]] = {}


def encode_stream(state: StreamState, layout: Layout) -> bytes:
    rows = {name: np.asarray(value)[None] for name, value in state.row.items()}
    (record,) = encode_rows([state.stream], [state.metric_names], rows, layout)
    return record


def encode_rows(streams: Sequence[str], metric_names: Sequence[tuple[str, ...]],
                rows: Mapping[str, np.ndarray], layout: Layout) -> list[bytes]:
    """One record per stream; `rows` holds every field with one row per stream (as arena
    arrays indexed by the streams' slots), all fields copied in one pass."""
    plan = _plan(layout)
    n = len(streams)
    body = np.concatenate(
        [np.ascontiguousarray(rows[name], dtype=dtype).reshape(n, count).view(np.uint8)
         for name, dtype, _, count, _ in plan.fields], axis=1)
    records = []
    for stream, names, row in zip(streams, metric_names, body, strict=True):
        header = orjson.dumps({"stream": stream, "metrics": list(names),
                               "layout": plan.fingerprint})
        records.append(b"".join((STREAM_MAGIC, _HEADER_LEN.pack(len(header)), header,
                                 row.tobytes())))
    return records


def decode_stream(data: bytes, layout_for: Callable[[int], Layout]) -> StreamState:
    """ValueError with the reason when the record is not a stream state of the layout
    `layout_for` gives for its number of metrics (its lane's layout)."""
    if data[:4] != STREAM_MAGIC:
        raise ValueError("not a stream state record")
    (n,) = _HEADER_LEN.unpack_from(data, 4)
    header = orjson.loads(data[8: 8 + n])
    plan = _plan(layout_for(len(header["metrics"])))
    if header.get("layout") != plan.fingerprint:
        raise ValueError("written under another model or state layout (settings changed)")
    row: dict[str, np.ndarray] = {}
    pos = 8 + n
    if len(data) != pos + plan.body_bytes:
        raise ValueError("stream state record of the wrong length")
    for name, dtype, shape, count, size in plan.fields:
        row[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += size
    return StreamState(header["stream"], tuple(header["metrics"]), row)


def encode_shared(state: SharedState, model_shape: dict[str, int]) -> bytes:
    header = {"format": SHARED_FORMAT, "version": SHARED_VERSION, "shape": model_shape,
              "meta": state.meta}
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(orjson.dumps(header), dtype=np.uint8), **state.arrays)
    return buf.getvalue()


def decode_shared(data: bytes, model_shape: dict[str, int]) -> SharedState:
    """ValueError with the reason when the record is not an engine state of this shape."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = orjson.loads(bytes(archive["header"]))
            arrays = {k: archive[k] for k in archive.files if k != "header"}
    except (OSError, KeyError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not an engine state record ({exc})") from None
    if header.get("format") != SHARED_FORMAT or header.get("version") not in SHARED_READABLE:
        raise ValueError(f"engine state format {header.get('format')!r} version "
                         f"{header.get('version')} is not readable by this build")
    if header.get("shape") != model_shape:
        raise ValueError(f"engine state of model shape {header.get('shape')}, settings say "
                         f"{model_shape}")
    return SharedState(arrays, header["meta"])


def load_records(engine: Engine, shared: bytes, streams: Iterable[bytes]) -> None:
    """Decode a partition's engine record and stream records into the fresh `engine`;
    ValueError with the reason when a record is not readable under its settings."""
    # One stream decoded at a time: a list of every decoded stream would hold ~30 small
    # array views per stream at once, several times the arena's own bytes.
    engine.restore(decode_shared(shared, engine.config.shape),
                   (decode_stream(v, engine.layout_for) for v in streams))
