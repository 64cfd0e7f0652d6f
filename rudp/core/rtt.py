"""Retransmission timeout estimation (RFC 6298).

Invariant: ``rto`` is always within [min_rto, max_rto]; ``backoff`` doubles it after
each timeout until a new RTT sample arrives (Karn's rule: the caller never feeds
samples taken from retransmitted segments unless they come from timestamps).
"""

from __future__ import annotations

# RFC 6298 (2.3): smoothing gains and the variance multiplier.
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
# Clock granularity G in seconds (RFC 6298 2.2/2.3); our clock is a float.
G = 0.001
# The weights of the old values in (2.3), computed once.
_KEEP_RTTVAR = 1 - BETA
_KEEP_SRTT = 1 - ALPHA


class RttEstimator:
    __slots__ = (
        "srtt",
        "rttvar",
        "min_rto",
        "max_rto",
        "_base_rto",
        "_backoff",
        "samples",
        "rto",
        "latest",
    )

    def __init__(self, initial_rto: float, min_rto: float, max_rto: float) -> None:
        self.srtt: float | None = None
        self.rttvar: float = 0.0
        self.min_rto = min_rto
        self.max_rto = max_rto
        # RFC 6298 (2.1): before any sample, RTO is the initial value.
        self._base_rto = initial_rto
        self._backoff = 1
        self.samples = 0
        #: The latest sample (RFC 9406's currRTT, RFC 9002's latest_rtt); 0.0 until
        #: ``samples`` counts one.
        self.latest = 0.0
        #: The current RTO, min(base * backoff, max_rto): kept up to date by every
        #: change, as it is read for every segment sent.
        self.rto = min(initial_rto, max_rto)

    def _update_rto(self) -> None:
        self.rto = min(self._base_rto * self._backoff, self.max_rto)

    def on_sample(self, rtt: float) -> None:
        """Fold in one measured round trip (seconds)."""
        # (max(rtt, 0.0) and the like, written out: the builtins cost far more.)
        if rtt < 0.0:
            rtt = 0.0
        self.latest = rtt
        srtt = self.srtt
        if srtt is None:
            # RFC 6298 (2.2)
            srtt = rtt
            rttvar = rtt / 2
        else:
            # RFC 6298 (2.3): RTTVAR first, using the old SRTT.
            rttvar = _KEEP_RTTVAR * self.rttvar + BETA * abs(srtt - rtt)
            srtt = _KEEP_SRTT * srtt + ALPHA * rtt
        self.srtt = srtt
        self.rttvar = rttvar
        # RFC 6298 (2.3): RTO = SRTT + max(G, K*RTTVAR), and (2.4) at least the
        # lower bound -- applied as Linux does, to the variance term: a steady
        # path's RTO stays min_rto above SRTT instead of collapsing onto it, so a
        # delayed ACK or a scheduling hiccup does not fire a spurious timeout.
        variance = G
        scaled = K * rttvar
        if scaled > variance:
            variance = scaled
        if self.min_rto > variance:
            variance = self.min_rto
        self._base_rto = base = srtt + variance
        # RFC 6298 (5.7): a new sample ends the backoff.
        self._backoff = 1
        self.rto = self.max_rto if self.max_rto < base else base
        self.samples += 1

    def on_timeout(self) -> None:
        """RFC 6298 (5.5): back off the timer after it expires."""
        if self._base_rto * self._backoff < self.max_rto:
            self._backoff *= 2
            self._update_rto()

    def reset_after_syn_timeout(self, initial_rto: float) -> None:
        """RFC 6298 (5.7): if the SYN was retransmitted, RTO falls back to 3 s once
        data transfer begins unless a sample arrives first."""
        if self.srtt is None:
            self._base_rto = max(initial_rto, 3.0) if self._backoff > 1 else initial_rto
            self._backoff = 1
            self._update_rto()
