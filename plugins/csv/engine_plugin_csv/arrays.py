"""Arrow columns as numpy arrays, read from their buffers.

Without ``pyarrow.compute``: importing it costs about 9 MB and a few tenths
of a second, and a CSV backtest needs none of it (a naive time in a zone
other than UTC aside, see ``parse``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def values(column: pa.ChunkedArray, dtype: Any, null: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The values of a fixed-width column as a new array, ``null`` where a
    value is missing, and where they are missing (None: nowhere)."""
    out = np.empty(len(column), dtype=dtype)
    return out, fill(out, column, null)


def fill(out: np.ndarray, column: pa.ChunkedArray, null: Any) -> np.ndarray | None:
    """Write the values of a fixed-width column (of ``out``'s type) into
    ``out``, ``null`` where a value is missing; where they are missing (None: nowhere)."""
    at = 0
    for chunk in column.chunks:
        n = len(chunk)
        out[at : at + n] = np.frombuffer(chunk.buffers()[1], dtype=out.dtype)[chunk.offset : chunk.offset + n]
        at += n
    if not column.null_count:
        return None
    missing = nulls(column)
    out[missing] = null
    return missing


def nulls(column: pa.ChunkedArray) -> np.ndarray:
    """Where the values of ``column`` are missing (bool per row)."""
    parts = []
    for chunk in column.chunks:
        bitmap = chunk.buffers()[0]
        if bitmap is None or not chunk.null_count:
            parts.append(np.zeros(len(chunk), dtype=bool))
            continue
        bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), count=chunk.offset + len(chunk), bitorder="little")
        parts.append(bits[chunk.offset :] == 0)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def codes(column: pa.ChunkedArray, index: dict[str, int]) -> np.ndarray:
    """Per row of a dictionary-encoded string column, ``index[value]``, or -1
    for a value not in ``index``."""
    parts = []
    for chunk in column.chunks:
        known = np.array([index.get(name, -1) for name in chunk.dictionary.to_pylist()], dtype=np.int64)
        parts.append(known[chunk.indices.to_numpy(zero_copy_only=False)] if len(known) else np.full(len(chunk), -1))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
