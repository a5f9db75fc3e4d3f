"""Checkpoint codec: a stream's state or an engine's shared state ↔ bytes, versioned, no pickle.

A stream record is `MAGIC, header length, JSON header, raw field bytes`: the header names the
stream, its metrics and a fingerprint of the arena layout (field names, shapes, dtypes), and the
fields follow in layout order, so decoding is a few `frombuffer` calls. A record written under
another layout (the model's size changed between runs) is refused with a reason, never
misread. The shared state (weights, optimiser moments, pending training windows) is an .npz
archive (allow_pickle=False) with a JSON header.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct

import numpy as np
import orjson

from detector.engine import SharedState, StreamState

STREAM_MAGIC = b"LDS1"
SHARED_FORMAT = "lstm-detector/engine-state"
SHARED_VERSION = 1
_HEADER_LEN = struct.Struct(">I")

Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


def layout_fingerprint(layout: Layout) -> str:
    return _fingerprint(tuple(layout.items()))


@functools.lru_cache(maxsize=16)  # every stream record of a checkpoint carries it
def _fingerprint(fields: tuple[tuple[str, tuple[tuple[int, ...], np.dtype]], ...]) -> str:
    text = ";".join(f"{name}:{shape}:{np.dtype(dtype).str}" for name, (shape, dtype) in fields)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_stream(state: StreamState, layout: Layout) -> bytes:
    header = orjson.dumps({"stream": state.stream, "metrics": list(state.metric_names),
                           "layout": layout_fingerprint(layout)})
    parts = [STREAM_MAGIC, _HEADER_LEN.pack(len(header)), header]
    for name, (shape, dtype) in layout.items():
        parts.append(np.ascontiguousarray(state.row[name], dtype=dtype).reshape(shape).tobytes())
    return b"".join(parts)


def decode_stream(data: bytes, layout: Layout) -> StreamState:
    """ValueError with the reason when the record is not a stream state of this layout."""
    if data[:4] != STREAM_MAGIC:
        raise ValueError("not a stream state record")
    (n,) = _HEADER_LEN.unpack_from(data, 4)
    header = orjson.loads(data[8: 8 + n])
    if header.get("layout") != layout_fingerprint(layout):
        raise ValueError("written under another model or state layout (settings changed)")
    row: dict[str, np.ndarray] = {}
    pos = 8 + n
    for name, (shape, dtype) in layout.items():
        count = int(np.prod(shape, dtype=np.int64))
        size = count * np.dtype(dtype).itemsize
        if pos + size > len(data):
            raise ValueError("truncated stream state record")
        row[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += size
    if pos != len(data):
        raise ValueError("stream state record has trailing bytes")
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
    if header.get("format") != SHARED_FORMAT or header.get("version") != SHARED_VERSION:
        raise ValueError(f"engine state format {header.get('format')!r} version "
                         f"{header.get('version')} is not readable by this build")
    if header.get("shape") != model_shape:
        raise ValueError(f"engine state of model shape {header.get('shape')}, settings say "
                         f"{model_shape}")
    return SharedState(arrays, header["meta"])
