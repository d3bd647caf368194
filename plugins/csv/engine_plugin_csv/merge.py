"""Interleave per-symbol chunk streams in event-time order.

The guarantee: chunks come out in nondecreasing order of their first
timestamp (ties in the order of the engine's symbols), and each symbol's
chunks keep their own order. So no chunk starts after a chunk emitted later
ends, and chunks are never split to interleave more finely than that.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

from engine_core import BarChunk


def demux(chunks: Iterable[BarChunk], symbols: Sequence[str]) -> list[Iterator[BarChunk]]:
    """One stream per symbol out of a stream mixing them.

    Chunks read ahead for another symbol wait in that symbol's queue, so a file
    grouped by symbol rather than sorted by time is held in memory.
    """
    source = iter(chunks)
    queues: dict[str, deque[BarChunk]] = {symbol: deque() for symbol in symbols}

    def stream(queue: deque[BarChunk]) -> Iterator[BarChunk]:
        while True:
            while not queue:
                chunk = next(source, None)
                if chunk is None:
                    return
                queues[chunk.symbol].append(chunk)
            yield queue.popleft()

    return [stream(queues[symbol]) for symbol in symbols]


def merge_by_time(streams: Iterable[Iterator[BarChunk]]) -> Iterator[BarChunk]:
    """A k-way merge of time-ordered streams on each chunk's first timestamp."""
    return heapq.merge(*streams, key=lambda chunk: int(chunk.ts[0]))
