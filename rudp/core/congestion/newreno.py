"""NewReno: RFC 5681 slow start and congestion avoidance with RFC 3465 byte counting;
fast recovery per RFC 6582 through the base class hooks."""

from __future__ import annotations

from .base import CongestionControl, register


@register
class NewReno(CongestionControl):
    __slots__ = ("_acked_in_avoidance",)

    name = "newreno"

    def _start(self) -> None:
        self._acked_in_avoidance = 0

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        if self.in_slow_start:
            self.slow_start(acked)
            return
        # RFC 5681 (3.1 equation 3) in the byte-counting form of RFC 3465 (2.1):
        # one MSS per window's worth of acknowledged bytes.
        self._acked_in_avoidance += acked
        if self._acked_in_avoidance >= self.cwnd:
            self._acked_in_avoidance -= self.cwnd
            self.cwnd += self.mss

    def on_loss(self, now: float, in_flight: int) -> None:
        # RFC 5681 (3.2 steps 2 and 3): equation 4, then inflate by the three
        # segments the duplicate ACKs say have left the network.
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh + 3 * self.mss
        self._acked_in_avoidance = 0
        # RFC 9406 (4.2): a loss ends slow start or CSS and HyStart++ with it.
        self.hystart = None

    def on_rto(self, now: float, in_flight: int) -> None:
        super().on_rto(now, in_flight)
        self._acked_in_avoidance = 0
