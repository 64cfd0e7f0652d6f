"""The sender's scoreboard: every segment in flight, and whether it was SACKed or
is presumed lost (RFC 6675 loss recovery, RFC 8985 RACK loss detection).

Offsets are stream positions (unbounded ints: 0 is the first byte after the SYN,
the FIN takes one position after the last byte), so nothing here wraps.
Invariants: the records are sorted, disjoint and cover [acked, sent_end) exactly;
``sacked_bytes`` and ``lost_bytes`` are the sizes of the records so marked, and a
record is never both SACKed and lost.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator


class SentSegment:
    """One transmitted segment: [start, end) and its latest transmission time."""

    __slots__ = ("end", "lost", "retransmitted", "sacked", "sent_at", "start")

    def __init__(self, start: int, end: int, sent_at: float) -> None:
        self.start = start
        self.end = end
        self.sent_at = sent_at
        self.retransmitted = False
        self.sacked = False
        self.lost = False  # presumed lost and not retransmitted since

    def __repr__(self) -> str:
        marks = "S" * self.sacked + "L" * self.lost + "R" * self.retransmitted
        return f"<{self.start}:{self.end} @{self.sent_at:.3f} {marks}>"


class Scoreboard:
    __slots__ = (
        "_head",
        "_segs",
        "_starts",
        "acked",
        "lost_bytes",
        "min_rtt",
        "rack_end",
        "rack_rtt",
        "rack_xmit_ts",
        "reordering_seen",
        "fack",
        "retransmitted_out",
        "sacked_bytes",
        "sent_end",
    )

    def __init__(self) -> None:
        self._segs: list[SentSegment] = []
        self._starts: list[int] = []  # parallel to _segs, for bisect
        self._head = 0  # records before it are acknowledged (compacted lazily)
        self.acked = 0
        self.sent_end = 0
        self.sacked_bytes = 0
        self.lost_bytes = 0
        self.retransmitted_out = 0  # retransmitted records still outstanding
        # RFC 8985 (6.1): the most recently sent segment known delivered.
        self.rack_xmit_ts = float("-inf")
        self.rack_end = 0
        self.rack_rtt = 0.0
        self.min_rtt = 0.0  # kept up to date by the connection
        # RFC 8985 (6.2 step 3): the highest end delivered, and whether an original
        # transmission was ever delivered below it (the path reorders).
        self.fack = 0
        self.reordering_seen = False

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._segs) - self._head

    def __iter__(self) -> Iterator[SentSegment]:
        return iter(self._segs[self._head :])

    @property
    def outstanding(self) -> int:
        return self.sent_end - self.acked

    @property
    def pipe(self) -> int:
        """RFC 6675 (4) "pipe": bytes presumed in the network (outstanding, minus
        SACKed, minus lost and not yet retransmitted)."""
        return self.sent_end - self.acked - self.sacked_bytes - self.lost_bytes

    def find(self, start: int) -> SentSegment | None:
        """The outstanding record that begins at ``start``, if any."""
        i = bisect.bisect_left(self._starts, start, self._head)
        if i < len(self._segs) and self._starts[i] == start:
            return self._segs[i]
        return None

    def first_lost(self) -> SentSegment | None:
        if not self.lost_bytes:
            return None
        for seg in self._segs[self._head :]:
            if seg.lost:
                return seg
        return None

    def last(self) -> SentSegment | None:
        return self._segs[-1] if len(self._segs) > self._head else None

    def highest_sacked_end(self) -> int:
        for seg in reversed(self._segs[self._head :]):
            if seg.sacked:
                return seg.end
        return self.acked

    # ------------------------------------------------------------- changes
    def on_sent(self, start: int, end: int, now: float) -> None:
        """New data [start, end) left; ``start`` is always ``sent_end``."""
        self._segs.append(SentSegment(start, end, now))
        self._starts.append(start)
        self.sent_end = end

    def on_sent_many(self, start: int, end: int, size: int, now: float) -> None:
        """New data [start, end) left together, in segments of ``size`` bytes (the
        last may be shorter); ``start`` is always ``sent_end``."""
        starts = range(start, end, size)
        self._segs += [SentSegment(s, s + size if s + size < end else end, now) for s in starts]
        self._starts += starts
        self.sent_end = end

    def on_retransmitted(self, seg: SentSegment, now: float) -> None:
        if seg.lost:
            seg.lost = False
            self.lost_bytes -= seg.end - seg.start
        if not seg.retransmitted:
            seg.retransmitted = True
            self.retransmitted_out += 1
        seg.sent_at = now

    def ack(self, offset: int, now: float) -> int:
        """Cumulative ACK up to ``offset``; returns the bytes newly acknowledged."""
        if offset <= self.acked:
            return 0
        if offset > self.sent_end:
            offset = self.sent_end
        newly = offset - self.acked
        segs = self._segs
        i = self._head
        while i < len(segs) and segs[i].end <= offset:
            seg = segs[i]
            self._forget(seg)
            if not seg.sacked:
                self._delivered(seg, now)
            i += 1
        if i < len(segs) and segs[i].start < offset:
            # A partial acknowledgment of one segment: keep its tail.
            seg = segs[i]
            self._delivered(seg, now)
            if seg.lost:
                self.lost_bytes -= offset - seg.start
            if seg.sacked:
                self.sacked_bytes -= offset - seg.start
            seg.start = offset
            self._starts[i] = offset
        self._head = i
        self.acked = offset
        if self._head > 64 and self._head * 2 > len(segs):
            del segs[: self._head]
            del self._starts[: self._head]
            self._head = 0
        return newly

    def ack_all(self, now: float) -> int:
        """``ack(sent_end)`` for the usual case of a board with nothing SACKed, lost
        or retransmitted: every record goes, and only RACK's state changes."""
        newly = self.sent_end - self.acked
        if newly <= 0:
            return 0
        # _delivered for each record, oldest first: none is a retransmission.
        fack = self.fack
        segs = self._segs
        if self._head:
            del segs[: self._head]  # acknowledged before
        for seg in segs:
            end = seg.end
            if end < fack:
                self.reordering_seen = True  # RFC 8985 (6.2 step 3)
            else:
                fack = end
            # RFC 8985 (6.2 step 2)
            sent_at = seg.sent_at
            if sent_at > self.rack_xmit_ts or (
                sent_at == self.rack_xmit_ts and end > self.rack_end
            ):
                self.rack_xmit_ts = sent_at
                self.rack_end = end
                self.rack_rtt = now - sent_at
        self.fack = fack
        segs.clear()
        self._starts.clear()
        self._head = 0
        self.acked = self.sent_end
        return newly

    def sack(self, left: int, right: int, now: float) -> int:
        """RFC 2018 / RFC 6675 (4): mark the records inside [left, right) SACKed;
        returns the bytes newly SACKed."""
        left = max(left, self.acked)
        right = min(right, self.sent_end)
        if left >= right:
            return 0
        segs = self._segs
        i = bisect.bisect_left(self._starts, left, self._head)
        newly = 0
        while i < len(segs) and segs[i].start < right:
            seg = segs[i]
            if seg.end <= right and not seg.sacked:
                size = seg.end - seg.start
                if seg.lost:
                    seg.lost = False
                    self.lost_bytes -= size
                seg.sacked = True
                self.sacked_bytes += size
                newly += size
                self._delivered(seg, now)
            i += 1
        return newly

    def mark_lost(self, seg: SentSegment) -> None:
        if not seg.lost and not seg.sacked:
            seg.lost = True
            self.lost_bytes += seg.end - seg.start

    def mark_all_lost(self) -> None:
        """RFC 6675 (5.1) after a retransmission timeout: everything not SACKed."""
        for seg in self._segs[self._head :]:
            self.mark_lost(seg)

    def detect_by_dupthresh(self, dupthresh: int, mss: int) -> None:
        """RFC 6675 (4) IsLost: a record is lost once ``dupthresh`` SACKed records,
        or more than (dupthresh - 1) * mss SACKed bytes, lie above it."""
        if not self.sacked_bytes:
            return
        sacked_count = 0
        sacked_above = 0
        limit = (dupthresh - 1) * mss
        for seg in reversed(self._segs[self._head :]):
            if seg.sacked:
                sacked_count += 1
                sacked_above += seg.end - seg.start
            elif (sacked_count >= dupthresh or sacked_above > limit) and not seg.retransmitted:
                self.mark_lost(seg)

    def detect_by_time(self, now: float, reo_wnd: float) -> float | None:
        """RFC 8985 (6.2 step 5) RACK: a record sent before the most recently sent
        delivered one is lost once it is older than RACK.rtt + reo_wnd.  Returns
        when the reordering timer must fire for the rest, or None."""
        if not (self.sacked_bytes or self.retransmitted_out):
            return None
        rack_ts, rack_end = self.rack_xmit_ts, self.rack_end
        deadline: float | None = None
        for seg in self._segs[self._head :]:
            if seg.sacked or seg.lost:
                continue
            if seg.sent_at < rack_ts or (seg.sent_at == rack_ts and seg.end < rack_end):
                expires = seg.sent_at + self.rack_rtt + reo_wnd
                if expires <= now:
                    self.mark_lost(seg)
                elif deadline is None or expires > deadline:
                    deadline = expires
        return deadline

    def split_front(self, seg: SentSegment, size: int) -> None:
        """Cut ``seg`` after ``size`` bytes (a smaller MSS must resend it)."""
        i = bisect.bisect_left(self._starts, seg.start, self._head)
        tail = SentSegment(seg.start + size, seg.end, seg.sent_at)
        tail.retransmitted, tail.lost, tail.sacked = seg.retransmitted, seg.lost, seg.sacked
        if seg.retransmitted:
            self.retransmitted_out += 1
        seg.end = seg.start + size
        self._segs.insert(i + 1, tail)
        self._starts.insert(i + 1, tail.start)

    # ------------------------------------------------------------ helpers
    def _forget(self, seg: SentSegment) -> None:
        size = seg.end - seg.start
        if seg.sacked:
            self.sacked_bytes -= size
        if seg.lost:
            self.lost_bytes -= size
        if seg.retransmitted:
            self.retransmitted_out -= 1

    def _delivered(self, seg: SentSegment, now: float) -> None:
        # RFC 8985 (6.2 step 3): an original delivered below the highest delivered
        # end means the path reorders.
        if seg.end < self.fack and not seg.retransmitted:
            self.reordering_seen = True
        if seg.end > self.fack:
            self.fack = seg.end
        # RFC 8985 (6.2 step 2): remember the most recently sent delivered
        # segment; a retransmission acknowledged sooner than it could have
        # travelled is ambiguous and skipped.
        if seg.retransmitted and now - seg.sent_at < self.min_rtt:
            return
        if seg.sent_at > self.rack_xmit_ts or (
            seg.sent_at == self.rack_xmit_ts and seg.end > self.rack_end
        ):
            self.rack_xmit_ts = seg.sent_at
            self.rack_end = seg.end
            self.rack_rtt = now - seg.sent_at
