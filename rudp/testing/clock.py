"""A clock that only moves when told to, so simulated runs take no wall time.

Invariant: ``now`` never decreases.  The simulated network jumps it straight to
the next deadline (like trio's MockClock with autojump), never sleeps.
"""

from __future__ import annotations


class VirtualClock:
    """Virtual time in seconds, starting at ``start``."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    @property
    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        """The current time, so the clock can stand in for ``time.monotonic``."""
        return self._now

    def advance(self, dt: float) -> float:
        """Move ``dt`` seconds forward and return the new time."""
        if dt < 0:
            raise ValueError(f"cannot move a clock backwards (dt={dt!r})")
        self._now += dt
        return self._now

    def advance_to(self, when: float) -> float:
        """Move forward to ``when``; a time already past leaves the clock where it is."""
        if when > self._now:
            self._now = float(when)
        return self._now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now!r})"
