"""What the engine tells its owner; drained with ``Connection.next_event()``."""

from __future__ import annotations

from dataclasses import dataclass


class Event:
    """Base class of every engine event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The three-way handshake completed: the connection is ESTABLISHED."""


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """In-order bytes for the application (never empty, never repeated)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EofReceived(Event):
    """The peer sent FIN after its last byte: it will send no more."""


@dataclass(frozen=True, slots=True)
class WritableAgain(Event):
    """The send buffer fell to the low-water mark after rising above the high one."""


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(Event):
    """The connection is over for the application; ``error`` is None for a clean
    close, else ``ConnectionResetError``, ``ConnectionRefusedError`` or
    ``TimeoutError``.  The engine may linger in TIME-WAIT or FIN-WAIT-2 after it."""

    error: Exception | None = None
