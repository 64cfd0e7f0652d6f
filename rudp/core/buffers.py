"""Byte buffers of one connection.

SendBuffer holds every byte the application handed us that the peer has not yet
acknowledged, in order: the unacknowledged (in flight) bytes first, then the unsent
ones.  ReceiveBuffer reassembles what arrives out of order and holds in-order bytes
the application has not taken yet; what it stores never exceeds the window we
advertised, so memory stays within the configured receive buffer.
"""

from __future__ import annotations

import bisect


class SendBuffer(bytearray):
    """A bytearray (appending with ``+=`` and deleting from the front are both
    amortised O(1); ``len`` and ``+=`` cost no Python call, and they run for every
    segment) with the operations the connection names."""

    __slots__ = ()

    def peek(self, offset: int, size: int) -> bytes:
        """Copy of ``size`` bytes starting ``offset`` bytes after the oldest one."""
        return bytes(self[offset : offset + size])

    def view(self) -> memoryview:
        """The buffered bytes without a copy.  Release it (``with``) before the
        buffer changes: a bytearray cannot resize while viewed."""
        return memoryview(self)

    def consume(self, size: int) -> None:
        """Forget the ``size`` oldest bytes (they were acknowledged)."""
        del self[:size]


class ReceiveBuffer:
    """Positions are stream offsets (0 = first data byte), so no sequence wrap here."""

    __slots__ = ("capacity", "delivered_end", "ready", "_ooo_starts", "_ooo_data", "_ooo_bytes")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Stream offset one past the last in-order byte received.
        self.delivered_end = 0
        # In-order bytes the application has not taken (reading paused); the
        # connection reads its length directly for every segment it sends.
        self.ready = bytearray()
        # Out-of-order pieces: sorted, disjoint, never adjacent to delivered_end.
        self._ooo_starts: list[int] = []
        self._ooo_data: list[bytes] = []
        self._ooo_bytes = 0

    @property
    def unread(self) -> int:
        return len(self.ready)

    @property
    def out_of_order_bytes(self) -> int:
        return self._ooo_bytes

    @property
    def has_gaps(self) -> bool:
        return bool(self._ooo_starts)

    def free_space(self) -> int:
        free = self.capacity - len(self.ready)
        return free if free > 0 else 0

    def insert(self, start: int, data: bytes) -> int:
        """Store ``data`` at stream offset ``start`` (>= delivered_end, trimmed by the
        caller to the window).  Returns how many bytes became in order."""
        end = start + len(data)
        if start == self.delivered_end and not self._ooo_starts:
            # Fast path: the next bytes, nothing waiting behind them.
            self.ready += data
            self.delivered_end = end
            return len(data)
        self._store_out_of_order(start, data)
        return self._pull_in_order()

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """The next in-order bytes, when nothing waits out of order (the caller
        checked ``has_gaps``)."""
        self.ready += data
        self.delivered_end += len(data)

    def take(self, limit: int | None = None) -> bytes:
        """Hand in-order bytes to the application."""
        if limit is None or limit >= len(self.ready):
            out = bytes(self.ready)
            self.ready.clear()
        else:
            out = bytes(self.ready[:limit])
            del self.ready[:limit]
        return out

    def ranges(self) -> list[tuple[int, int]]:
        """Out-of-order [start, end) stream ranges, merged where they touch."""
        merged: list[tuple[int, int]] = []
        for start, data in zip(self._ooo_starts, self._ooo_data, strict=True):
            end = start + len(data)
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def _store_out_of_order(self, start: int, data: bytes) -> None:
        end = start + len(data)
        starts, pieces = self._ooo_starts, self._ooo_data
        # Keep what is already stored; add only the gaps the new bytes fill.
        i = bisect.bisect_right(starts, start) - 1
        cursor = start
        if i >= 0:
            cursor = max(cursor, starts[i] + len(pieces[i]))
        j = i + 1
        while cursor < end:
            if j < len(starts) and starts[j] < end:
                gap_end = starts[j]
                if gap_end > cursor:
                    self._add_piece(j, cursor, data[cursor - start : gap_end - start])
                    j += 1
                cursor = max(cursor, starts[j] + len(pieces[j]))
                j += 1
            else:
                self._add_piece(j, cursor, data[cursor - start :])
                cursor = end

    def _add_piece(self, index: int, start: int, data: bytes) -> None:
        self._ooo_starts.insert(index, start)
        self._ooo_data.insert(index, data)
        self._ooo_bytes += len(data)

    def _pull_in_order(self) -> int:
        gained = 0
        starts, pieces = self._ooo_starts, self._ooo_data
        while starts and starts[0] <= self.delivered_end:
            start = starts.pop(0)
            piece = pieces.pop(0)
            self._ooo_bytes -= len(piece)
            skip = self.delivered_end - start
            if skip < len(piece):
                self.ready += piece[skip:]
                gained += len(piece) - skip
                self.delivered_end = start + len(piece)
        return gained
