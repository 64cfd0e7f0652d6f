"""The sender's scoreboard on its own: RFC 6675 bookkeeping (pipe, IsLost, what
an RTO presumes lost) and RFC 8985 RACK loss detection by time.

Offsets are stream positions (0 is the first data byte); segments are 100 bytes
unless a test says otherwise, so segment i is [100*i, 100*i + 100).  Times are
binary fractions, so every deadline compared is an exact float.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rudp.core.scoreboard import Scoreboard, SentSegment

SIZE = 100
MSS = 100


def board_with(count: int, *, at: float = 1.0, size: int = SIZE) -> Scoreboard:
    """``count`` back-to-back segments of ``size`` bytes, all sent at ``at``."""
    board = Scoreboard()
    for i in range(count):
        board.on_sent(i * size, (i + 1) * size, at)
    return board


def spans(board: Scoreboard) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in board]


def marks(board: Scoreboard) -> str:
    """One letter per record: S sacked, L lost, R retransmitted (not lost), . other."""
    return "".join(
        "S" if s.sacked else "L" if s.lost else "R" if s.retransmitted else "." for s in board
    )


def record(board: Scoreboard, start: int) -> SentSegment:
    return next(s for s in board if s.start == start)


# ===================================================================== bookkeeping
def test_on_sent_appends_records_and_pipe_counts_them_all_rfc6675_4() -> None:
    """RFC 6675 (4) SetPipe: with nothing SACKed or lost, every outstanding byte
    is in the pipe."""
    board = board_with(3)
    assert spans(board) == [(0, 100), (100, 200), (200, 300)]
    assert (board.acked, board.sent_end, board.outstanding) == (0, 300, 300)
    assert board.pipe == 300
    last = board.last()
    assert last is not None and last.start == 200


def test_empty_board() -> None:
    board = Scoreboard()
    assert len(board) == 0 and board.pipe == 0 and board.outstanding == 0
    assert board.last() is None and board.first_lost() is None
    assert board.highest_sacked_end() == 0
    assert board.ack(100, 1.0) == 0


def test_cumulative_ack_drops_whole_records_and_returns_bytes_newly_acked() -> None:
    board = board_with(4)
    assert board.ack(200, 1.5) == 200
    assert spans(board) == [(200, 300), (300, 400)]
    assert (board.acked, board.outstanding, board.pipe) == (200, 200, 200)
    assert board.ack(200, 1.6) == 0  # a duplicate acknowledges nothing new
    assert board.ack(150, 1.6) == 0  # nor does an old one


def test_ack_beyond_sent_end_is_clamped() -> None:
    board = board_with(2)
    assert board.ack(10_000, 1.5) == 200
    assert len(board) == 0 and board.acked == 200 == board.sent_end


def test_partial_ack_trims_the_front_record() -> None:
    """An ACK inside a segment (the peer took part of it, e.g. after the MSS
    shrank) keeps the unacknowledged tail as the first record."""
    board = board_with(3)
    assert board.ack(150, 1.5) == 150
    assert spans(board) == [(150, 200), (200, 300)]
    assert board.pipe == 150


def test_partial_ack_of_a_lost_record_trims_lost_bytes_too() -> None:
    board = board_with(3)
    board.mark_lost(record(board, 0))
    assert (board.lost_bytes, board.pipe) == (100, 200)
    board.ack(40, 1.5)
    assert board.lost_bytes == 60
    assert board.pipe == 300 - 40 - 60


def test_sack_marks_whole_records_and_pipe_excludes_them_rfc6675_4() -> None:
    """RFC 6675 (4): pipe = outstanding - SACKed - (lost, not retransmitted)."""
    board = board_with(5)
    assert board.sack(100, 300, 1.5) == 200
    assert marks(board) == ".SS.."
    assert board.sacked_bytes == 200
    assert board.pipe == 500 - 200
    assert board.highest_sacked_end() == 300
    assert board.sack(100, 300, 1.6) == 0  # the same block again adds nothing


def test_sack_of_part_of_a_segment_is_ignored_rfc6675_4() -> None:
    """A block that covers only part of a record marks nothing: the scoreboard
    works in whole segments, and a partial block proves no segment arrived."""
    board = board_with(3)
    assert board.sack(150, 300, 1.5) == 100  # only [200, 300) is whole
    assert marks(board) == "..S"
    assert board.sack(0, 50, 1.5) == 0
    assert board.sack(210, 290, 1.5) == 0
    assert marks(board) == "..S"


def test_sack_outside_acked_sent_end_is_clipped() -> None:
    board = board_with(3)
    board.ack(100, 1.5)
    assert board.sack(0, 200, 1.6) == 100  # [0, 100) is already acknowledged
    assert board.sack(200, 5000, 1.6) == 100  # beyond sent_end is clipped
    assert board.sack(300, 400, 1.6) == 0
    assert marks(board) == "SS"


def test_sack_of_a_lost_record_clears_lost() -> None:
    board = board_with(3)
    board.mark_lost(record(board, 100))
    board.sack(100, 200, 1.5)
    assert (board.lost_bytes, board.sacked_bytes) == (0, 100)
    assert marks(board) == ".S."
    board.mark_lost(record(board, 100))  # never both SACKed and lost
    assert board.lost_bytes == 0


def test_cumulative_ack_over_sacked_records_drops_their_bytes() -> None:
    board = board_with(4)
    board.sack(100, 300, 1.5)
    board.ack(300, 1.6)
    assert board.sacked_bytes == 0
    assert spans(board) == [(300, 400)]


def test_retransmission_of_a_lost_record_puts_it_back_in_the_pipe_rfc6675_4() -> None:
    """RFC 6675 (4) SetPipe (b): a retransmitted segment counts in the pipe again."""
    board = board_with(4)
    lost = record(board, 100)
    board.mark_lost(lost)
    assert (board.pipe, board.first_lost()) == (300, lost)
    board.on_retransmitted(lost, 2.0)
    assert board.pipe == 400
    assert board.first_lost() is None
    assert (lost.retransmitted, lost.sent_at, board.retransmitted_out) == (True, 2.0, 1)
    board.ack(400, 2.5)
    assert board.retransmitted_out == 0


# ======================================================================== IsLost
def test_is_lost_after_three_sacked_segments_above_rfc6675_4() -> None:
    """RFC 6675 (4) IsLost: DupThresh (3) discontiguous SACKed segments above."""
    board = board_with(6)
    board.sack(100, 300, 1.5)
    board.detect_by_dupthresh(3, MSS)
    assert board.lost_bytes == 0  # two SACKed segments (200 bytes = 2*MSS) is not enough
    board.sack(400, 500, 1.6)
    board.detect_by_dupthresh(3, MSS)
    # Segment 0 has 3 SACKed above; segment 3 has one; segment 5 has none.
    assert marks(board) == "LSS.S."
    assert board.lost_bytes == 100


def test_is_lost_after_more_than_two_mss_of_sacked_bytes_rfc6675_4() -> None:
    """RFC 6675 (4) IsLost: "more than (DupThresh - 1) * SMSS bytes with sequence
    numbers greater than SeqNum have been SACKed" -- with large segments, two
    SACKed records above can already hold more than 2 * SMSS."""
    board = Scoreboard()
    board.on_sent(0, 100, 1.0)
    board.on_sent(100, 250, 1.0)  # 150 bytes
    board.on_sent(250, 350, 1.0)
    board.sack(100, 350, 1.5)  # two records, 250 bytes > 2 * MSS
    board.detect_by_dupthresh(3, MSS)
    assert marks(board) == "LSS"


def test_exactly_two_mss_sacked_above_is_not_lost_rfc6675_4() -> None:
    board = board_with(3)
    board.sack(100, 300, 1.5)  # 200 bytes == 2 * MSS, not more
    board.detect_by_dupthresh(3, MSS)
    assert board.lost_bytes == 0


def test_is_lost_does_not_remark_a_retransmitted_segment() -> None:
    """Once retransmitted, a hole is RACK's to judge (RFC 8985 6.2): SACKs that
    are no newer than the retransmission prove nothing about it."""
    board = board_with(5)
    board.sack(100, 400, 1.5)
    board.detect_by_dupthresh(3, MSS)
    board.on_retransmitted(record(board, 0), 1.5)
    board.sack(400, 500, 1.6)
    board.detect_by_dupthresh(3, MSS)
    assert marks(board) == "RSSSS"
    assert board.lost_bytes == 0


# ======================================================================== RACK
def test_rack_records_the_most_recently_sent_delivered_segment_rfc8985_6_2_step_2() -> None:
    board = Scoreboard()
    board.on_sent(0, 100, 1.0)
    board.on_sent(100, 200, 1.25)
    board.on_sent(200, 300, 1.25)
    board.sack(100, 200, 1.5)
    assert (board.rack_xmit_ts, board.rack_end, board.rack_rtt) == (1.25, 200, 0.25)
    board.ack(100, 1.625)  # an older segment delivered later does not move RACK
    assert (board.rack_xmit_ts, board.rack_end) == (1.25, 200)
    board.sack(200, 300, 1.75)  # same time, higher end: RACK_sent_after
    assert (board.rack_xmit_ts, board.rack_end, board.rack_rtt) == (1.25, 300, 0.5)


def test_rack_skips_ambiguous_retransmission_rfc8985_6_2_step_2() -> None:
    """RFC 8985 6.2 step 2: a retransmitted segment acknowledged sooner than
    min_RTT after the retransmission was likely the original's ACK: no update."""
    board = board_with(2)
    board.min_rtt = 0.125
    board.mark_lost(record(board, 0))
    board.on_retransmitted(record(board, 0), 2.0)
    board.sack(0, 100, 2.0625)  # 1/16 s after the retransmission
    assert board.rack_xmit_ts == float("-inf")
    board.sack(100, 200, 2.0625)  # the original never retransmitted: counts
    assert (board.rack_xmit_ts, board.rack_end, board.rack_rtt) == (1.0, 200, 1.0625)


def test_rack_marks_lost_after_rack_rtt_plus_reo_wnd_rfc8985_6_2_step_5() -> None:
    """RFC 8985 6.2 step 5: a segment sent before RACK.xmit_ts is lost once
    Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now() <= 0; until then the
    reordering timer must fire at that time (6.3)."""
    board = Scoreboard()
    board.on_sent(0, 100, 1.0)
    board.on_sent(100, 200, 1.0625)
    board.on_sent(200, 300, 1.125)
    board.sack(200, 300, 1.1875)  # RACK.rtt = 0.0625, RACK.xmit_ts = 1.125
    reo_wnd = 0.25
    # Segment 0 expires at 1.0 + 0.0625 + 0.25, segment 1 at 1.0625 + 0.0625 + 0.25;
    # the timer waits for the later of the two.
    assert board.detect_by_time(1.1875, reo_wnd) == 1.0625 + 0.0625 + reo_wnd == 1.375
    assert marks(board) == "..S"
    assert board.detect_by_time(1.3125 - 2**-20, reo_wnd) == 1.375
    assert marks(board) == "..S"
    assert board.detect_by_time(1.3125, reo_wnd) == 1.375
    assert marks(board) == "L.S"
    assert board.detect_by_time(1.375, reo_wnd) is None
    assert marks(board) == "LLS"


def test_rack_same_send_time_orders_by_end_sequence_rfc8985_6_2() -> None:
    """RFC 8985 RACK_sent_after: equal xmit_ts, the higher end_seq is the later."""
    board = board_with(3)  # all sent at 1.0
    board.sack(100, 200, 1.25)
    assert board.detect_by_time(1.25, 0.0) is None
    assert marks(board) == "LS."  # segment 2 ends above RACK.end_seq: not judged


def test_rack_without_sacks_or_retransmissions_judges_nothing() -> None:
    board = board_with(3)
    board.ack(100, 1.5)
    assert board.detect_by_time(9.0, 0.0) is None
    assert board.lost_bytes == 0


def test_rack_detects_a_lost_retransmission_rfc8985_6_2() -> None:
    """The point of RACK: a retransmission is judged by its own send time, so a
    segment sent after it and delivered proves it lost (DupThresh cannot)."""
    board = board_with(2)
    board.mark_lost(record(board, 0))
    board.on_retransmitted(record(board, 0), 2.0)
    board.on_sent(200, 300, 2.0)
    board.sack(100, 200, 2.25)  # the original segment 1: RACK.xmit_ts 1.0
    assert board.detect_by_time(2.25, 0.0) is None
    assert marks(board) == "RS."
    board.sack(200, 300, 2.25)  # sent with the retransmission, higher end
    assert board.detect_by_time(2.25, 0.0) is None
    assert marks(board) == "LSS"


# ================================================================= RTO, split
def test_mark_all_lost_after_rto_keeps_sacked_rfc6675_5_1() -> None:
    """RFC 6675 5.1: after a retransmission timeout everything not SACKed is
    presumed lost; the SACK information is kept, so pipe is zero."""
    board = board_with(5)
    board.sack(100, 200, 1.5)
    board.sack(300, 400, 1.5)
    board.mark_all_lost()
    assert marks(board) == "LSLSL"
    assert (board.lost_bytes, board.sacked_bytes, board.pipe) == (300, 200, 0)
    assert board.first_lost() is record(board, 0)


def test_split_front_cuts_a_record_and_keeps_its_marks() -> None:
    board = board_with(2)
    lost = record(board, 0)
    board.mark_lost(lost)
    board.on_retransmitted(lost, 2.0)
    board.mark_lost(lost)
    board.split_front(lost, 40)
    assert spans(board) == [(0, 40), (40, 100), (100, 200)]
    assert marks(board) == "LL."
    assert board.lost_bytes == 100
    assert board.retransmitted_out == 2  # both halves are retransmitted records
    assert record(board, 40).sent_at == 2.0
    board.ack(100, 2.5)
    assert (board.retransmitted_out, board.lost_bytes) == (0, 0)


def test_split_front_then_sack_finds_the_new_records() -> None:
    board = board_with(3)
    board.split_front(record(board, 100), 50)
    assert board.sack(150, 300, 1.5) == 150
    assert marks(board) == "..SS"


# ===================================================================== invariants
@dataclass
class Op:
    kind: str
    a: int = 0
    b: int = 0


OPS = st.one_of(
    st.builds(Op, st.just("send"), st.integers(1, 300)),
    st.builds(Op, st.just("ack"), st.integers(0, 2000)),
    st.builds(Op, st.just("sack"), st.integers(0, 2000), st.integers(0, 600)),
    st.builds(Op, st.just("lose"), st.integers(0, 50)),
    st.builds(Op, st.just("retransmit"), st.integers(0, 50)),
    st.builds(Op, st.just("rto")),
    st.builds(Op, st.just("dupthresh"), st.integers(1, 4)),
    st.builds(Op, st.just("rack"), st.integers(0, 3)),
    st.builds(Op, st.just("split"), st.integers(0, 50), st.integers(1, 299)),
)


def check_invariants(board: Scoreboard) -> None:
    recs = list(board)
    assert len(recs) == len(board)
    # Sorted, disjoint, covering [acked, sent_end) exactly.
    edge = board.acked
    for r in recs:
        assert r.start == edge < r.end, (r, edge)
        edge = r.end
    assert edge == board.sent_end
    # Counters are the sums over the records.
    assert board.sacked_bytes == sum(r.end - r.start for r in recs if r.sacked)
    assert board.lost_bytes == sum(r.end - r.start for r in recs if r.lost)
    assert board.retransmitted_out == sum(1 for r in recs if r.retransmitted)
    assert not any(r.sacked and r.lost for r in recs)
    assert 0 <= board.pipe <= board.outstanding == board.sent_end - board.acked
    first = board.first_lost()
    assert first is next((r for r in recs if r.lost), None)


@settings(max_examples=300, deadline=None)
@given(st.lists(OPS, max_size=60))
def test_random_operations_keep_the_invariants(ops: list[Op]) -> None:
    """Whatever the order of sends, ACKs, SACKs, loss marks, retransmissions,
    timeouts and splits: counters equal the sums over the records, and the
    records are sorted, disjoint and cover [acked, sent_end)."""
    board = Scoreboard()
    board.min_rtt = 0.25
    now = 0.0
    for op in ops:
        now += 0.125
        recs = list(board)
        if op.kind == "send":
            board.on_sent(board.sent_end, board.sent_end + op.a, now)
        elif op.kind == "ack":
            board.ack(op.a, now)
        elif op.kind == "sack":
            board.sack(op.a, op.a + op.b, now)
        elif op.kind == "rto":
            board.mark_all_lost()
        elif op.kind == "dupthresh":
            board.detect_by_dupthresh(op.a, 50)
        elif op.kind == "rack":
            deadline = board.detect_by_time(now, op.a / 8)
            assert deadline is None or deadline > now
        elif recs:
            target = recs[op.a % len(recs)]
            if op.kind == "lose":
                board.mark_lost(target)
            elif op.kind == "retransmit" and not target.sacked:
                board.on_retransmitted(target, now)
            elif op.kind == "split" and target.end - target.start > 1:
                board.split_front(target, 1 + op.b % (target.end - target.start - 1))
        check_invariants(board)


@pytest.mark.parametrize("dupthresh", [1, 2, 3])
def test_dupthresh_marks_exactly_the_rfc6675_islost_set(dupthresh: int) -> None:
    """IsLost written out per segment against a mixed board."""
    board = board_with(10)
    for i in (2, 3, 5, 8):
        board.sack(i * SIZE, (i + 1) * SIZE, 1.5)
    board.detect_by_dupthresh(dupthresh, MSS)
    expected = []
    for i, r in enumerate(board):
        above = [j for j in (2, 3, 5, 8) if j > i]
        lost = not r.sacked and (
            len(above) >= dupthresh or len(above) * SIZE > (dupthresh - 1) * MSS
        )
        expected.append(lost)
    assert [r.lost for r in board] == expected


def _everything(board: Scoreboard) -> tuple[object, ...]:
    """What the board shows to the connection, records included."""
    records = [(r.start, r.end, r.sent_at, r.sacked, r.lost, r.retransmitted) for r in board]
    return (
        records,
        board.acked,
        board.sent_end,
        board.sacked_bytes,
        board.lost_bytes,
        board.retransmitted_out,
        board.rack_xmit_ts,
        board.rack_end,
        board.rack_rtt,
        board.fack,
        board.reordering_seen,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(OPS, max_size=40), st.integers(0, 3))
def test_ack_all_is_ack_of_sent_end_on_a_clean_board(ops: list[Op], sends: int) -> None:
    """``ack_all`` (the usual ACK, taken by header prediction) does what
    ``ack(sent_end)`` does whenever nothing is SACKed, lost or retransmitted --
    after any history, RACK's state and the reordering mark included."""
    board = Scoreboard()
    board.min_rtt = 0.25
    now = 0.0
    for op in ops:
        now += 0.125
        recs = list(board)
        if op.kind == "send":
            board.on_sent(board.sent_end, board.sent_end + op.a, now)
        elif op.kind == "ack":
            board.ack(op.a, now)
        elif op.kind == "sack":
            board.sack(op.a, op.a + op.b, now)
        elif recs and op.kind == "retransmit" and not recs[op.a % len(recs)].sacked:
            board.on_retransmitted(recs[op.a % len(recs)], now)
    # Acknowledge what is dirty, then send a few more (some at one time).
    if board.sacked_bytes or board.lost_bytes or board.retransmitted_out:
        board.ack(board.sent_end, now)
    for i in range(sends):
        now += 0.125 * (i % 2)
        board.on_sent(board.sent_end, board.sent_end + 50 + i, now)
    now += 0.5
    general = copy.deepcopy(board)
    assert board.ack_all(now) == general.ack(general.sent_end, now)
    assert _everything(board) == _everything(general)
    check_invariants(board)
    # The board goes on working alike.
    for b in (board, general):
        b.on_sent(b.sent_end, b.sent_end + 100, now + 1)
        b.sack(b.sent_end - 100, b.sent_end, now + 2)
    assert _everything(board) == _everything(general)


def test_ack_all_of_nothing_outstanding_changes_nothing() -> None:
    board = board_with(2)
    board.ack(2 * SIZE, 2.0)
    before = _everything(board)
    assert board.ack_all(3.0) == 0
    assert _everything(board) == before
