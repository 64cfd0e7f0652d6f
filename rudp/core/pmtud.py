"""Path MTU discovery by probing with data segments (RFC 8899 state machine, used
the way RFC 4821 describes for TCP).

The engine asks :meth:`PathMtuDiscovery.should_probe` whether its next data segment
should be a probe of a given size, reports what became of the probe, and sizes
every other segment by :attr:`PathMtuDiscovery.plpmtu`.  Sizes are whole TCP
segments (header + options + payload), i.e. the UDP payload.  No ICMP reaches us
through a UDP socket, so Packet Too Big messages (RFC 8899 4.6) play no part: only
acknowledged probes raise the size, and only loss lowers it.

Invariants:

* Ordinary data never exceeds the confirmed size: ``plpmtu`` is ``base_size``
  (assumed to work, RFC 8899 5.1.2 BASE_PLPMTU), ``min_size`` (ERROR), or a size
  that an acknowledged probe confirmed since the last fall back; never above
  ``max_size``, never below ``min_size``.
* A probe is never smaller than ``base_size`` nor larger than ``max_size``; while
  SEARCHING it is larger than ``plpmtu``.  At most one probe is in flight.
* Probes go only when the sender has new data to fill one (RFC 8899 4.3, RFC 4821
  7.4): this object never asks for padding.  A probe is sent once; if it is lost,
  its data is retransmitted in segments of at most ``plpmtu``, never as a probe.
* The object only reacts to what it is told: loss of a probe and a suspected black
  hole are decided by the sender, which also keeps probe loss out of congestion
  control (RFC 4821 7.6).  Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .errors import LocalProtocolError

# RFC 8899 5.1.2: consecutive unacknowledged probes, of any size, that end a search.
MAX_PROBES = 3
# RFC 8899 5.1.1: PROBE_TIMER MUST NOT be below 1 s and SHOULD exceed 15 s.  The
# sender normally reports a lost probe long before (RTO or SACK); this is a backstop.
PROBE_TIMER = 30.0
# RFC 8899 5.1.1 (after RFC 4821 7.3): time spent in SEARCH_COMPLETE before the
# search for a larger size starts again.
PMTU_RAISE_TIMER = 600.0
# RFC 8899 5.3.2: smallest gain worth a probe; the search stops within this many
# bytes of the path's real limit.
SEARCH_GRANULARITY = 16
# RFC 8899 5.1.2 MIN_PLPMTU, used in ERROR: an IPv6 path carries 1280-byte packets,
# 1232 bytes of UDP payload; 1200 is the BASE_PLPMTU the RFC recommends for IPv4.
MIN_PLPMTU = 1200
# RFC 8899 5.3.2: a table of common sizes gives the first steps.  UDP payloads
# under IPv6 (48 bytes of IP+UDP headers) and IPv4 (28) for Ethernet (1500), jumbo
# frames (9000) and the 65535-byte IP limit (loopback); odd paths are found by
# bisection between table steps.
COMMON_SIZES = (1452, 1472, 8952, 8972, 65487, 65507)


class PmtudState(enum.Enum):
    """RFC 8899 5.2 states, named as in figure 5."""

    DISABLED = "DISABLED"
    BASE = "BASE"
    SEARCHING = "SEARCHING"
    SEARCH_COMPLETE = "SEARCH_COMPLETE"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


# Every transition _set_state allows: RFC 8899 figure 5, plus a black hole at the
# base size going straight to ERROR (RFC 4821 7.7: nothing larger to fall back from).
TRANSITIONS: dict[PmtudState, frozenset[PmtudState]] = {
    PmtudState.DISABLED: frozenset({PmtudState.BASE}),
    PmtudState.BASE: frozenset({PmtudState.SEARCHING, PmtudState.ERROR, PmtudState.DISABLED}),
    PmtudState.SEARCHING: frozenset(
        {PmtudState.SEARCH_COMPLETE, PmtudState.BASE, PmtudState.ERROR, PmtudState.DISABLED}
    ),
    PmtudState.SEARCH_COMPLETE: frozenset(
        {PmtudState.SEARCHING, PmtudState.BASE, PmtudState.ERROR, PmtudState.DISABLED}
    ),
    PmtudState.ERROR: frozenset({PmtudState.SEARCHING, PmtudState.DISABLED}),
}


class PathMtuDiscovery:
    """Packetization-layer PMTU discovery for one path, driven by a TCP sender.

    Inputs: :meth:`start`, :meth:`stop`, :meth:`on_probe_sent`,
    :meth:`on_probe_acked`, :meth:`on_probe_lost`, :meth:`on_black_hole_suspected`,
    :meth:`handle_timer`.  Outputs: :meth:`should_probe`, :attr:`plpmtu`,
    :meth:`next_timer`.  It starts DISABLED; :meth:`start` once the handshake
    is done.
    """

    __slots__ = (
        "base_size",
        "max_size",
        "min_size",
        "max_probes",
        "probe_timeout",
        "raise_interval",
        "granularity",
        "probes_sent",
        "probes_acked",
        "probes_lost",
        "black_holes",
        "_ladder",
        "_state",
        "_plpmtu",
        "_probed_size",
        "_probe_count",
        "_search_high",
        "_in_flight",
        "_probe_deadline",
        "_raise_at",
        "_error_probe_at",
    )

    def __init__(
        self,
        base_size: int,
        max_size: int,
        *,
        min_size: int | None = None,
        max_probes: int = MAX_PROBES,
        probe_timeout: float = PROBE_TIMER,
        raise_interval: float = PMTU_RAISE_TIMER,
        granularity: int = SEARCH_GRANULARITY,
        common_sizes: Iterable[int] = COMMON_SIZES,
    ) -> None:
        if min_size is None:
            min_size = min(MIN_PLPMTU, base_size)
        if not 0 < min_size <= base_size <= max_size:
            raise ValueError("need 0 < min_size <= base_size <= max_size")
        if max_probes < 1 or granularity < 1:
            raise ValueError("max_probes and granularity must be at least 1")
        # RFC 8899 5.1.1: PROBE_TIMER MUST NOT be smaller than 1 second.
        if probe_timeout < 1.0 or raise_interval <= 0:
            raise ValueError("probe_timeout must be at least 1 s, raise_interval positive")
        self.base_size = base_size
        self.max_size = max_size
        self.min_size = min_size
        self.max_probes = max_probes
        self.probe_timeout = probe_timeout
        self.raise_interval = raise_interval
        self.granularity = granularity
        self.probes_sent = 0
        self.probes_acked = 0
        self.probes_lost = 0
        self.black_holes = 0
        # Table steps strictly between base and max, then MAX_PLPMTU itself.
        self._ladder = sorted({s for s in common_sizes if base_size < s < max_size} | {max_size})
        self._state = PmtudState.DISABLED
        self._plpmtu = base_size
        # RFC 8899 5.1.3 PROBED_SIZE (None: nothing to probe) and PROBE_COUNT.
        self._probed_size: int | None = None
        self._probe_count = 0
        # RFC 4821 7.1 search_high, exclusive: the smallest size that failed in
        # this search, or max_size + 1 while none has.
        self._search_high = max_size + 1
        self._in_flight = False
        self._probe_deadline: float | None = None
        self._raise_at: float | None = None
        self._error_probe_at = 0.0

    # ------------------------------------------------------------------ read-only
    @property
    def state(self) -> PmtudState:
        return self._state

    @property
    def plpmtu(self) -> int:
        """The largest segment ordinary (non-probe) data may use now."""
        return self._plpmtu

    @property
    def probed_size(self) -> int | None:
        """RFC 8899 5.1.3 PROBED_SIZE: the probe in flight or the next one."""
        return self._probed_size

    @property
    def probe_count(self) -> int:
        """RFC 8899 5.1.3 PROBE_COUNT: consecutive probes that went unacknowledged."""
        return self._probe_count

    @property
    def probe_in_flight(self) -> bool:
        return self._in_flight

    # ------------------------------------------------------------------ outputs
    def should_probe(self, now: float) -> int | None:
        """Size of the segment to send as the next probe, or None.  Changes nothing:
        call :meth:`on_probe_sent` only if the probe really left."""
        if self._in_flight or self._probed_size is None:
            return None
        if self._state is PmtudState.ERROR and now < self._error_probe_at:
            return None
        return self._probed_size

    def next_timer(self) -> float | None:
        """The earliest deadline for :meth:`handle_timer`, if any."""
        deadlines = [t for t in (self._probe_deadline, self._raise_at) if t is not None]
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ inputs
    def start(self) -> None:
        """RFC 8899 5.2: the PL indicates connectivity (handshake done): DISABLED ->
        BASE, which confirms BASE_PLPMTU with the first probe."""
        if self._state is PmtudState.DISABLED:
            self._enter_base()

    def stop(self) -> None:
        """RFC 8899 5.2: back to DISABLED (closing, or loss of connectivity).  Any
        probe in flight is forgotten; ``plpmtu`` keeps its value."""
        if self._state is not PmtudState.DISABLED:
            self._forget_probe()
            self._raise_at = None
            self._probed_size = None
            self._set_state(PmtudState.DISABLED)

    def on_probe_sent(self, size: int, now: float) -> None:
        """The sender sent a probe of ``size`` bytes, as :meth:`should_probe` asked."""
        offered = self.should_probe(now)
        if offered is None or size != offered:
            raise LocalProtocolError(f"probe of {size} bytes sent, {offered} was asked for")
        # RFC 8899 5.3.1: the PROBE_TIMER runs from each probe sent.
        self._in_flight = True
        self._probe_deadline = now + self.probe_timeout
        self.probes_sent += 1

    def on_probe_acked(self, size: int, now: float) -> None:
        """The probe of ``size`` bytes was acknowledged (ACK or SACK covers it).
        Acknowledgments of a probe already declared lost or forgotten are ignored."""
        if not self._is_current_probe(size):
            return
        self._forget_probe()
        self.probes_acked += 1
        # RFC 8899 5.2: an acknowledged probe resets PROBE_COUNT and confirms its size.
        self._probe_count = 0
        if self._state is PmtudState.SEARCHING:
            # RFC 8899 5.3.1 / RFC 4821 7.6: PROBED_SIZE becomes the PLPMTU.
            self._plpmtu = size
            self._continue_search(now)
        else:
            # RFC 8899 5.2: BASE_PLPMTU confirmed in BASE or ERROR: search upwards.
            self._plpmtu = self.base_size
            self._enter_searching(now)

    def on_probe_lost(self, size: int, now: float) -> None:
        """The sender decided the probe of ``size`` bytes is lost (RTO, or SACK and
        duplicate ACKs showing it missing).  Its data goes again at ``plpmtu``."""
        if self._is_current_probe(size):
            self._probe_failed(now)

    def on_black_hole_suspected(self, now: float) -> None:
        """The sender saw repeated timeouts of ordinary segments (RFC 4821 7.7
        full-stop timeout): the path may no longer carry ``plpmtu``."""
        if self._state is PmtudState.DISABLED or self._state is PmtudState.ERROR:
            return
        self.black_holes += 1
        self._forget_probe()
        self._raise_at = None
        if self._plpmtu > self.base_size:
            # RFC 8899 4.3 and 5.2: black hole in SEARCHING or SEARCH_COMPLETE -> BASE.
            self._enter_base()
        else:
            # RFC 4821 7.7: already at the base size, nothing larger to fall back
            # from: use the minimum (RFC 8899 5.2 ERROR signals a conservative size).
            self._enter_error(now)

    def handle_timer(self, now: float) -> None:
        """Run whatever deadline has passed; harmless to call early."""
        if self._probe_deadline is not None and now >= self._probe_deadline:
            # RFC 8899 5.3.1: the PROBE_TIMER expired before an acknowledgment.
            self._probe_failed(now)
        if self._raise_at is not None and now >= self._raise_at:
            # RFC 8899 5.2: PMTU_RAISE_TIMER expiry, SEARCH_COMPLETE -> SEARCHING.
            self._raise_at = None
            self._enter_searching(now)

    # ------------------------------------------------------------------ internals
    def _is_current_probe(self, size: int) -> bool:
        return self._in_flight and size == self._probed_size

    def _forget_probe(self) -> None:
        self._in_flight = False
        self._probe_deadline = None

    def _probe_failed(self, now: float) -> None:
        self._forget_probe()
        self.probes_lost += 1
        # RFC 8899 5.3.1: each expiry (each lost probe) increments PROBE_COUNT.
        self._probe_count += 1
        if self._state is PmtudState.BASE:
            # RFC 8899 5.2: BASE_PLPMTU unconfirmed after MAX_PROBES -> ERROR.
            if self._probe_count >= self.max_probes:
                self._enter_error(now)
        elif self._state is PmtudState.ERROR:
            # RFC 8899 5.2: ERROR damps oscillation; retry BASE_PLPMTU at most once
            # per PROBE_TIMER.
            self._error_probe_at = now + self.probe_timeout
        elif self._state is PmtudState.SEARCHING:
            # RFC 4821 7.6: a lost probe says the path is smaller than the probe.
            assert self._probed_size is not None
            self._search_high = min(self._search_high, self._probed_size)
            if self._probe_count >= self.max_probes:
                # RFC 8899 5.3.1: PROBE_COUNT reached MAX_PROBES, stop probing.
                self._enter_search_complete(now)
            else:
                self._continue_search(now)

    def _next_probe_size(self) -> int | None:
        low = self._plpmtu
        if self._search_high > self.max_size:
            # RFC 8899 5.3.2: nothing failed yet, climb the table of common sizes.
            return next((size for size in self._ladder if size > low), None)
        # RFC 4821 7.3: bisect between the largest confirmed and smallest failed
        # size, until the range is no wider than the granularity.
        if self._search_high - low <= self.granularity:
            return None
        return (low + self._search_high) // 2

    def _continue_search(self, now: float) -> None:
        self._probed_size = self._next_probe_size()
        if self._probed_size is None:
            # RFC 8899 5.2: MAX_PLPMTU acknowledged, or no useful size left.
            self._enter_search_complete(now)

    def _enter_base(self) -> None:
        # RFC 8899 5.2 BASE: PROBED_SIZE = BASE_PLPMTU, PROBE_COUNT = 0.
        self._set_state(PmtudState.BASE)
        self._plpmtu = self.base_size
        self._probed_size = self.base_size
        self._probe_count = 0

    def _enter_searching(self, now: float) -> None:
        # RFC 4821 7.3: a new search resets search_high to its initial value.
        self._set_state(PmtudState.SEARCHING)
        self._search_high = self.max_size + 1
        self._probe_count = 0
        self._continue_search(now)

    def _enter_search_complete(self, now: float) -> None:
        self._set_state(PmtudState.SEARCH_COMPLETE)
        self._probed_size = None
        # RFC 8899 5.1.1: PMTU_RAISE_TIMER; pointless once MAX_PLPMTU is confirmed.
        # RFC 8899 5.2: a TCP sender is an acknowledged PL, so no CONFIRMATION_TIMER.
        self._raise_at = now + self.raise_interval if self._plpmtu < self.max_size else None

    def _enter_error(self, now: float) -> None:
        self._set_state(PmtudState.ERROR)
        self._plpmtu = self.min_size
        self._probed_size = self.base_size
        self._probe_count = 0
        self._error_probe_at = now + self.probe_timeout

    def _set_state(self, new: PmtudState) -> None:
        if new not in TRANSITIONS[self._state]:
            raise AssertionError(f"PMTUD transition {self._state} -> {new} not allowed")
        self._state = new
