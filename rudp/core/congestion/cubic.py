"""CUBIC (RFC 9438): a window that grows as a cubic function of the time since the
last congestion event, with a Reno-friendly floor.  Windows are kept in bytes;
the cubic function works in segments, as the RFC writes it."""

from __future__ import annotations

from .base import CongestionControl, register

# RFC 9438 (4.1 and 5): the constants.
C = 0.4
BETA_CUBIC = 0.7
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)


@register
class Cubic(CongestionControl):
    __slots__ = (
        "_acked_bytes",
        "_after_timeout",
        "_cwnd_epoch",
        "_cwnd_prior",
        "_epoch_start",
        "_k",
        "_w_est",
        "w_max",
    )

    name = "cubic"

    def _start(self) -> None:
        self.w_max = 0.0  # segments, window before the last reduction
        self._epoch_start: float | None = None
        self._k = 0.0
        self._cwnd_epoch = 0.0  # segments
        self._w_est = 0.0  # segments, the Reno-friendly estimate
        self._cwnd_prior = 0.0  # segments, cwnd when ssthresh was last set
        self._after_timeout = False
        self._acked_bytes = 0

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        if self.in_slow_start:
            self.slow_start(acked)
            return
        mss = self.mss
        cwnd_seg = self.cwnd / mss
        if self._epoch_start is None:
            # RFC 9438 (4.2): a congestion avoidance epoch begins.
            self._epoch_start = now
            self._cwnd_epoch = cwnd_seg
            self._w_est = cwnd_seg
            if self._after_timeout:
                # RFC 9438 (4.8): the first avoidance stage after a timeout
                # starts convex: K = 0 and W_max = cwnd now.
                self._after_timeout = False
                self.w_max = cwnd_seg
                self._k = 0.0
            elif self.w_max <= cwnd_seg:
                self._k = 0.0
                self.w_max = cwnd_seg
            else:
                self._k = ((self.w_max - cwnd_seg) / C) ** (1 / 3)
        t = now - self._epoch_start
        rtt = rtt or 0.0
        # RFC 9438 (4.3): Reno-friendly estimate, growing by alpha per window
        # acked; alpha becomes 1 once the estimate is back at the old window.
        alpha = 1.0 if self._w_est >= self._cwnd_prior else ALPHA_CUBIC
        self._w_est += alpha * (acked / mss) / cwnd_seg
        if self.w_cubic(t) < self._w_est:
            # RFC 9438 (4.3): the Reno-friendly region.
            target = self._w_est
        else:
            # RFC 9438 (4.4): target W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
            target = min(max(self.w_cubic(t + rtt), cwnd_seg), 1.5 * cwnd_seg)
        # Grow by (target - cwnd) / cwnd per segment acked, counted in bytes.
        growth = (target - cwnd_seg) / cwnd_seg * (acked / mss)
        self._acked_bytes += int(growth * mss)
        if self._acked_bytes >= 1:
            self.cwnd += self._acked_bytes
            self._acked_bytes = 0

    def end_slow_start(self) -> None:
        super().end_slow_start()
        # RFC 9438 (4.10): HyStart++ left slow start with no loss, so W_max is
        # undefined: cwnd_prior = cwnd, and the epoch the next ACK begins takes
        # K = 0 and W_max = cwnd (W_max is still 0, below any window).
        self._cwnd_prior = self.cwnd / self.mss

    def w_cubic(self, t: float) -> float:
        """RFC 9438 (4.2, equation 1), in segments."""
        return C * (t - self._k) ** 3 + self.w_max

    def on_loss(self, now: float, in_flight: int) -> None:
        self._reduce()
        # Inflate by the three segments the duplicate ACKs say have left.
        self.cwnd = self.ssthresh + 3 * self.mss

    def on_rto(self, now: float, in_flight: int) -> None:
        # RFC 9438 (4.8): after a timeout, reduce as for loss, then restart
        # from one segment in slow start (RFC 5681).
        self._reduce()
        self.cwnd = self.mss
        self._after_timeout = True

    def _reduce(self) -> None:
        cwnd_seg = self.cwnd / self.mss
        self._cwnd_prior = cwnd_seg
        # RFC 9438 (4.7): fast convergence releases bandwidth to newer flows.
        if cwnd_seg < self.w_max:
            self.w_max = cwnd_seg * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = cwnd_seg
        # RFC 9438 (4.6): multiplicative decrease by beta.
        self.ssthresh = max(int(self.cwnd * BETA_CUBIC), 2 * self.mss)
        self._epoch_start = None
        self._acked_bytes = 0
        # RFC 9406 (4.2, 4.3): a loss or a timeout ends HyStart++ for good.
        self.hystart = None
