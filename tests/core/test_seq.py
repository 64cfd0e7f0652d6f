"""Sequence-number arithmetic at and across the 2**32 wrap (RFC 9293 3.4)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from rudp.core.seq import (
    seq_add,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_sub,
)

TOP = 2**32 - 1
seqs = st.integers(0, TOP)
distances = st.integers(-(2**31) + 1, 2**31 - 1)


def test_rfc9293_3_4_add_wraps_at_2_32() -> None:
    assert seq_add(TOP, 1) == 0
    assert seq_add(TOP, 10) == 9
    assert seq_add(0, -1) == TOP
    assert seq_add(5, 2**32) == 5


def test_rfc9293_3_4_sub_is_signed_distance_across_wrap() -> None:
    assert seq_sub(0, TOP) == 1
    assert seq_sub(TOP, 0) == -1
    assert seq_sub(5, 2**32 - 5) == 10
    assert seq_sub(7, 7) == 0
    assert seq_sub(2**31 - 1, 0) == 2**31 - 1
    # Exactly half the ring apart is the ambiguous point; it maps to -2**31.
    assert seq_sub(2**31, 0) == -(2**31)


def test_rfc9293_3_4_comparisons_across_wrap() -> None:
    assert seq_lt(TOP, 0)
    assert seq_le(TOP, 0)
    assert seq_gt(0, TOP)
    assert seq_ge(0, TOP)
    assert not seq_lt(0, TOP)
    assert not seq_gt(TOP, 0)
    assert seq_lt(2**32 - 1000, 1000)
    assert seq_gt(1000, 2**32 - 1000)


def test_rfc9293_3_4_comparisons_at_equality() -> None:
    for a in (0, 1, 2**31, TOP):
        assert seq_le(a, a) and seq_ge(a, a)
        assert not seq_lt(a, a) and not seq_gt(a, a)


def test_rfc9293_3_4_comparisons_near_half_ring() -> None:
    assert seq_lt(0, 2**31 - 1)
    assert seq_gt(2**31 - 1, 0)
    assert seq_gt(0, 2**31 + 1)  # more than half ahead means behind
    assert seq_lt(2**31 + 1, 0)


def test_rfc9293_3_4_in_window_across_wrap() -> None:
    left = 2**32 - 10
    assert seq_in_window(left, left, 20)
    assert seq_in_window(TOP, left, 20)
    assert seq_in_window(0, left, 20)
    assert seq_in_window(9, left, 20)
    assert not seq_in_window(10, left, 20)
    assert not seq_in_window(left - 1, left, 20)
    assert not seq_in_window(left, left, 0)


@settings(max_examples=200)
@given(seqs, distances)
def test_rfc9293_3_4_add_then_sub_round_trips(a: int, d: int) -> None:
    b = seq_add(a, d)
    assert 0 <= b <= TOP
    assert seq_sub(b, a) == d
    assert seq_sub(a, b) == -d


@settings(max_examples=200)
@given(seqs, distances)
def test_rfc9293_3_4_comparisons_agree_with_distance(a: int, d: int) -> None:
    b = seq_add(a, d)
    assert seq_lt(a, b) == (d > 0) == seq_gt(b, a)
    assert seq_le(a, b) == (d >= 0) == seq_ge(b, a)
    assert seq_lt(a, b) != seq_ge(a, b)
    assert seq_gt(a, b) != seq_le(a, b)


@settings(max_examples=200)
@given(seqs, st.integers(0, 2**31), st.integers(0, 2**31))
def test_rfc9293_3_4_in_window_matches_distance(left: int, size: int, offset: int) -> None:
    assert seq_in_window(seq_add(left, offset), left, size) == (offset < size)
