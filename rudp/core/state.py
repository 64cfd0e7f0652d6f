"""Connection states, named and printed as in RFC 9293 section 3.3.2."""

from __future__ import annotations

import enum


class State(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # By identity, as members compare: Enum's own __hash__ is a Python call, and
    # every transition looks a state up in TRANSITIONS and _CAN_SEND-like sets.
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.value

    @property
    def synchronized(self) -> bool:
        """RFC 9293 3.10.7.4: the states after the handshake completed."""
        return self in _SYNCHRONIZED


_SYNCHRONIZED = frozenset(
    {
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
        State.TIME_WAIT,
    }
)

# Every transition the engine may make; Connection._set_state refuses others.
# (RFC 9293 figure 5, plus the reset/abort/timeout edges to CLOSED.)
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CLOSED: frozenset({State.SYN_SENT, State.LISTEN, State.SYN_RECEIVED}),
    State.LISTEN: frozenset({State.SYN_RECEIVED, State.SYN_SENT, State.CLOSED}),
    State.SYN_SENT: frozenset({State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSED}),
    State.SYN_RECEIVED: frozenset(
        {State.ESTABLISHED, State.FIN_WAIT_1, State.CLOSE_WAIT, State.LISTEN, State.CLOSED}
    ),
    State.ESTABLISHED: frozenset({State.FIN_WAIT_1, State.CLOSE_WAIT, State.CLOSED}),
    State.FIN_WAIT_1: frozenset(
        {State.FIN_WAIT_2, State.CLOSING, State.TIME_WAIT, State.CLOSED}
    ),
    State.FIN_WAIT_2: frozenset({State.TIME_WAIT, State.CLOSED}),
    State.CLOSE_WAIT: frozenset({State.LAST_ACK, State.CLOSED}),
    State.CLOSING: frozenset({State.TIME_WAIT, State.CLOSED}),
    State.LAST_ACK: frozenset({State.CLOSED}),
    State.TIME_WAIT: frozenset({State.CLOSED}),
}
