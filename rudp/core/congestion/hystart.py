"""HyStart++ (RFC 9406): leave the initial slow start when the round-trip time
grows, before the bottleneck queue overflows, through a conservative slow start
(CSS) that a spurious exit can undo.

The controller sees no sequence numbers, so rounds are counted in bytes:
``windowEnd`` is the new data sent when a round begins (SND.NXT), and the round
ends when the bytes acknowledged reach it (an ACK covering windowEnd).  RTT
samples are the estimator's latest, one per ACK that brought a new one.

Invariants: ``baseline`` is finite exactly in CSS; the controller drops this
object (``hystart = None``) when HyStart++ is over -- congestion avoidance, a
loss, a timeout -- so it runs for the initial slow start only (RFC 9406 4.3).
"""

from __future__ import annotations

from math import inf
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..rtt import RttEstimator
    from .base import CongestionControl

# RFC 9406 (4.3): the recommended constants; times in seconds.
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
# L, the most segments one ACK may add, for a sender that does not pace (L is
# infinite for one that does).
L_UNPACED = 8


class HyStart:
    """RFC 9406 (4.2) state of one connection's initial slow start."""

    __slots__ = (
        "_rtt",
        "_seen",
        "acked",
        "baseline",
        "css_rounds",
        "current_min",
        "last_min",
        "paced",
        "samples",
        "sent",
        "window_end",
    )

    def __init__(self, rtt: RttEstimator, paced: bool) -> None:
        self._rtt = rtt
        self._seen = rtt.samples  # the estimator's count when last looked at
        self.paced = paced
        # The byte clock: new data sent, data acknowledged; windowEnd = SND.NXT.
        self.sent = 0
        self.acked = 0
        self.window_end = 0
        self.last_min = inf  # lastRoundMinRTT
        self.current_min = inf  # currentRoundMinRTT
        self.samples = 0  # rttSampleCount
        self.baseline = inf  # cssBaselineMinRtt
        self.css_rounds = 0

    @property
    def in_css(self) -> bool:
        return self.baseline != inf

    def on_ack(self, cc: CongestionControl, acked: int) -> None:
        """An ACK of ``acked`` new bytes in slow start or CSS: grow ``cc.cwnd``,
        take the RTT sample, and decide at the end of a round."""
        # RFC 9406 (4.2): cwnd += min(N, L * SMSS), divided by CSS_GROWTH_DIVISOR in CSS.
        growth = acked
        if not self.paced and growth > L_UNPACED * cc.mss:
            growth = L_UNPACED * cc.mss
        baseline = self.baseline
        if baseline != inf:
            growth //= CSS_GROWTH_DIVISOR
        cc.cwnd += growth
        rtt = self._rtt
        if rtt.samples != self._seen:
            self._seen = rtt.samples
            # RFC 9406 (4.2): currentRoundMinRTT = min(currentRoundMinRTT, currRTT).
            current = self.current_min
            if rtt.latest < current:
                self.current_min = current = rtt.latest
            self.samples += 1
            if self.samples >= N_RTT_SAMPLE:
                if baseline == inf:
                    # RFC 9406 (4.2): a delay increase ends slow start (the
                    # current minimum is finite: it has a sample).
                    last = self.last_min
                    if last != inf:
                        threshold = last / MIN_RTT_DIVISOR
                        if threshold < MIN_RTT_THRESH:
                            threshold = MIN_RTT_THRESH
                        elif threshold > MAX_RTT_THRESH:
                            threshold = MAX_RTT_THRESH
                        if current >= last + threshold:
                            self.baseline = current  # enter CSS
                elif current < baseline:
                    # RFC 9406 (4.2): the delay went back below where CSS began:
                    # the exit was spurious; resume slow start, HyStart++ included.
                    self.baseline = inf
                    self.css_rounds = 0
        # The bytes acknowledged, at least what the window lets be in flight: the
        # connection reports no ACK while it is not cwnd-limited, and this floor
        # keeps such ACKs from pushing the round's end ever later.
        total = self.acked + acked
        floor = self.sent - cc.cwnd
        self.acked = total = total if total > floor else floor
        if total >= self.window_end:
            self._end_round(cc)

    def _end_round(self, cc: CongestionControl) -> None:
        # RFC 9406 (4.2): a new round: windowEnd = SND.NXT, and the minima move on.
        self.window_end = self.sent
        self.last_min = self.current_min
        self.current_min = inf
        self.samples = 0
        if self.baseline != inf:
            # RFC 9406 (4.2): CSS lasts CSS_ROUNDS rounds, counting the one it
            # began in; then congestion avoidance from here (ssthresh = cwnd).
            self.css_rounds += 1
            if self.css_rounds >= CSS_ROUNDS:
                cc.end_slow_start()
