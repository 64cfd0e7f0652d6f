"""32-bit modular sequence-number arithmetic (RFC 9293 3.4).

Sequence numbers live in the ring of integers modulo 2**32, so "a < b" means "b is
ahead of a by less than half the ring".  Invariant: the comparisons and
:func:`seq_sub` are meaningful only when the two numbers are less than 2**31 apart;
TCP keeps every window and every in-flight range far below that.  All four
comparisons agree with the sign of :func:`seq_sub` (at exactly 2**31 apart the
distance is -2**31, so ``seq_lt`` holds both ways: the ambiguous point, outside the
invariant).
"""

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` wrapped into [0, 2**32); n may be negative."""
    return (a + n) & SEQ_MASK


def seq_sub(a: int, b: int) -> int:
    """Signed distance from b to a, in [-2**31, 2**31)."""
    return ((a - b + HALF) & SEQ_MASK) - HALF


def seq_lt(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) >= HALF


def seq_le(a: int, b: int) -> bool:
    d = (a - b) & SEQ_MASK
    return d == 0 or d >= HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & SEQ_MASK) < HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) < HALF


def seq_in_window(x: int, left: int, size: int) -> bool:
    """``left <= x < left + size`` modulo 2**32 (false when size is 0)."""
    return ((x - left) & SEQ_MASK) < size
