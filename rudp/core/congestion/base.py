"""The congestion controller interface and the registry of algorithms by name.

The connection owns loss detection and recovery (which segment to resend, when
recovery starts and ends); a controller only decides how big ``cwnd`` is, through
the named hooks below.  All sizes are in bytes.  The initial slow start runs
HyStart++ (RFC 9406, ``hystart.py``) when the controller is given the
connection's RTT estimator and ``hystart`` is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hystart import HyStart

if TYPE_CHECKING:
    from ..rtt import RttEstimator


class CongestionControl:
    """Base class; subclasses register themselves with :func:`register` and take
    the same arguments."""

    # Slots: a controller lives as long as its connection (thousands when idle).
    __slots__ = ("cwnd", "hystart", "mss", "ssthresh")

    name = ""

    def __init__(
        self,
        mss: int,
        initial_window: int,
        rtt: RttEstimator | None = None,
        *,
        hystart: bool = True,
        paced: bool = False,
    ) -> None:
        self.mss = mss
        # RFC 6928: IW = min(10 * MSS, max(2 * MSS, 14600)) for the default of 10.
        self.cwnd = initial_window_bytes(mss, initial_window)
        # RFC 5681 (3.1): ssthresh starts arbitrarily high.
        self.ssthresh = 1 << 62
        # RFC 9406: HyStart++ needs the RTT samples; None once it is over.
        self.hystart = HyStart(rtt, paced) if hystart and rtt is not None else None
        self._start()

    def _start(self) -> None:
        """A subclass sets up its own state here (rather than repeating __init__'s
        signature)."""

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def set_mss(self, mss: int) -> None:
        """The sending MSS changed (path MTU discovery): keep the window in bytes,
        as Linux does, but never below one segment."""
        self.mss = mss
        self.cwnd = max(self.cwnd, mss)

    def reset_initial_window(self, mss: int, segments: int) -> None:
        """The handshake fixed the MSS: start from the initial window for it."""
        self.mss = mss
        self.cwnd = initial_window_bytes(mss, segments)

    def slow_start(self, acked: int) -> None:
        """RFC 5681 (3.1 equation 2) with RFC 3465 byte counting, as Linux's
        tcp_slow_start: every acknowledged byte counts, up to ssthresh.

        RFC 3465 (2.2) caps one ACK's growth at L = 2*SMSS, which assumes an ACK
        per two segments.  rudp's receivers acknowledge a read batch at a time
        (up to 64 KiB, as Linux behind GRO), and the cap would turn slow start
        into linear growth of two segments per round trip.

        In the initial slow start, HyStart++ (RFC 9406) grows the window instead."""
        hystart = self.hystart
        if hystart is not None:
            hystart.on_ack(self, acked)
            return
        cwnd = self.cwnd
        # min(cwnd + acked, max(ssthresh, cwnd)), without the costly builtins.
        limit = self.ssthresh if self.ssthresh > cwnd else cwnd
        self.cwnd = cwnd + acked if cwnd + acked < limit else limit

    def end_slow_start(self) -> None:
        """RFC 9406 (4.2): HyStart++ is done after CSS_ROUNDS rounds of CSS:
        congestion avoidance from the current window (ssthresh = cwnd)."""
        self.ssthresh = self.cwnd
        self.hystart = None

    def on_sent(self, nbytes: int, now: float) -> None:
        """New data of ``nbytes`` left for the network (never a retransmission)."""
        hystart = self.hystart
        if hystart is not None:
            hystart.sent += nbytes

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        """``acked`` new bytes were acknowledged outside loss recovery."""
        raise NotImplementedError

    def on_loss(self, now: float, in_flight: int) -> None:
        """Fast retransmit: loss detected by duplicate ACKs; recovery begins.
        Subclasses end HyStart++ here (``hystart = None``)."""
        raise NotImplementedError

    def on_dupack(self) -> None:
        """RFC 5681 (3.2 step 4): another duplicate ACK during recovery."""
        self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        """RFC 6582 (3.2 step 3): deflate by what was acked, add back one segment."""
        self.cwnd = max(self.cwnd - acked + self.mss, self.mss)

    def on_recovery_end(self, in_flight: int) -> None:
        """RFC 6582 (3.2 step 3, full ACK): deflate the window to ssthresh.

        Option (2) of that step, as Linux's tcp_end_cwnd_reduction: option (1),
        min(ssthresh, max(FlightSize, SMSS) + SMSS), leaves about two segments
        after a full ACK (little is then in flight) and the sender starts again
        from there in slow start: each loss would cost far more than the
        multiplicative decrease meant."""
        self.cwnd = self.ssthresh

    def on_rto(self, now: float, in_flight: int) -> None:
        """RFC 5681 (3.1, equations 4 and 5): a retransmission timeout."""
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        # RFC 9406 (4.3): HyStart++ for the initial slow start only; the next
        # one stops at the ssthresh this loss found.
        self.hystart = None


def initial_window_bytes(mss: int, segments: int) -> int:
    if segments == 10:
        # RFC 6928 (2)
        return min(10 * mss, max(2 * mss, 14600))
    return segments * mss


_REGISTRY: dict[str, type[CongestionControl]] = {}


def register(cls: type[CongestionControl]) -> type[CongestionControl]:
    _REGISTRY[cls.name] = cls
    return cls


def create(
    name: str,
    mss: int,
    initial_window: int,
    rtt: RttEstimator | None = None,
    *,
    hystart: bool = True,
    paced: bool = False,
) -> CongestionControl:
    """The controller ``name``; its initial slow start runs HyStart++ (RFC 9406)
    when ``rtt``, the connection's estimator, is given and ``hystart`` is true
    (``paced``: the sender paces, so HyStart++ does not cap one ACK's growth)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown congestion control {name!r} (known: {known})") from None
    return cls(mss, initial_window, rtt, hystart=hystart, paced=paced)


def available() -> list[str]:
    return sorted(_REGISTRY)
